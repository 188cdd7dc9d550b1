/* The dispatch benchmarks' user process: prints the wall-clock time at which it started (seconds with
 * microseconds) to $COMPUTALOT_RESULT_PATH, else $BENCH_OUT. A C program starts in a fraction of a
 * millisecond, so the stamp is close to the moment the process began. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  const char *path = getenv("COMPUTALOT_RESULT_PATH");
  if (!path || !*path) path = getenv("BENCH_OUT");
  FILE *f = fopen(path, "w");
  if (!f) return 1;
  fprintf(f, "%lld.%06ld\n", (long long)ts.tv_sec, ts.tv_nsec / 1000);
  return fclose(f) == 0 ? 0 : 1;
}
