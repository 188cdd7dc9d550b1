/*
 * What each way of keeping a task's process tree costs per task, in the helper's own terms (C, no Node):
 * start `true`, wait for it, know that its tree is gone. Needs root and a cgroup2 mount (the cgroup ways).
 *
 *   cc -O2 -o /tmp/tree-fork bench/tree-fork.c && /tmp/tree-fork 2000 0 && /tmp/tree-fork 100 20
 *
 * Arguments: tasks per way, and milliseconds of idleness before each task (0: back to back, as in a
 * fan-out; 20: one at a time, as in sequential dispatch). Prints ms per task for each way, alternating the
 * ways over 2 rounds, then whether a cgroup that had `cgroup.kill` written kills what is later born in it.
 *   vfork   no tree kept (the floor)
 *   move    vfork, the child writes "0" to its cgroup's cgroup.procs before exec (the helper's first try)
 *   clone3  the child is born in its cgroup (CLONE_INTO_CGROUP): the helper's cgroup mode
 *   mkdir   clone3 into a cgroup made for the task and removed after it (why the helper pools them)
 *   anchor  a forked subreaper that vforks the task and reports its exit: the helper's anchor mode
 * docs/decisions.md ("A cgroup per task") has the figures and what they decided.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char *const TRUE_ARGV[] = { "/bin/true", NULL };
static int cgroup = -1, events = -1, procs = -1;

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static pid_t clone_into(int dir) {
  struct clone_args args;
  memset(&args, 0, sizeof args);
  args.flags = CLONE_INTO_CGROUP;
  args.exit_signal = SIGCHLD;
  args.cgroup = (uint64_t)dir;
  return (pid_t)syscall(SYS_clone3, &args, sizeof args);
}

static void run_true(void) {
  setsid();
  execv(TRUE_ARGV[0], TRUE_ARGV);
  _exit(127);
}

/* Spins until the cgroup is empty: the helper's "tree gone". */
static void wait_empty(void) {
  char buf[128];
  for (;;) {
    ssize_t n = pread(events, buf, sizeof buf - 1, 0);
    if (n <= 0) return;
    buf[n] = 0;
    char *p = strstr(buf, "populated ");
    if (!p || p[10] == '0') return;
  }
}

static void one(const char *way) {
  int status;
  if (strcmp(way, "vfork") == 0) {
    pid_t pid = vfork();
    if (pid == 0) run_true();
    waitpid(pid, &status, 0);
  } else if (strcmp(way, "move") == 0) {
    pid_t pid = vfork();
    if (pid == 0) { if (write(procs, "0", 1) != 1) _exit(126); run_true(); }
    waitpid(pid, &status, 0);
    wait_empty();
  } else if (strcmp(way, "mkdir") == 0) {
    if (mkdirat(cgroup, "one", 0755) < 0) exit(1);
    int dir = openat(cgroup, "one", O_RDONLY | O_DIRECTORY);
    int saved = events;
    events = openat(dir, "cgroup.events", O_RDONLY);
    pid_t pid = clone_into(dir);
    if (pid == 0) run_true();
    waitpid(pid, &status, 0);
    wait_empty();
    close(events);
    events = saved;
    close(dir);
    unlinkat(cgroup, "one", AT_REMOVEDIR);
  } else if (strcmp(way, "clone3") == 0) {
    pid_t pid = clone_into(cgroup);
    if (pid == 0) run_true();
    waitpid(pid, &status, 0);
    wait_empty();
  } else {
    int ctl[2];
    if (pipe(ctl) < 0) exit(1);
    pid_t anchor = fork();
    if (anchor == 0) {
      prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
      pid_t pid = vfork();
      if (pid == 0) run_true();
      waitpid(pid, &status, 0);
      if (write(ctl[1], &status, sizeof status) < 0) _exit(1);
      while (waitpid(-1, &status, WNOHANG) > 0) {}
      _exit(0);
    }
    close(ctl[1]);
    if (read(ctl[0], &status, sizeof status) < 0) exit(1);
    close(ctl[0]);
    waitpid(anchor, &status, 0);
  }
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 2000, gap = argc > 2 ? atoi(argv[2]) : 0;
  char mount[4096] = "", line[4096];
  FILE *info = fopen("/proc/self/mountinfo", "r");
  while (info && fgets(line, sizeof line, info))
    if (strstr(line, " - cgroup2 ") && sscanf(line, "%*s %*s %*s %*s %4095s", mount) == 1) break;
  if (info) fclose(info);
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/computalot-tree-fork-%d", mount, (int)getpid());
  if (!mount[0] || mkdir(dir, 0755) < 0) { fprintf(stderr, "needs root and a cgroup2 mount (%s)\n", dir); return 1; }
  cgroup = open(dir, O_RDONLY | O_DIRECTORY);
  events = openat(cgroup, "cgroup.events", O_RDONLY);
  procs = openat(cgroup, "cgroup.procs", O_WRONLY | O_CLOEXEC);
  const char *ways[] = { "vfork", "move", "clone3", "mkdir", "anchor" };
  const int n_ways = sizeof ways / sizeof *ways;
  printf("| way | tasks | idle ms before each | ms per task, round 1 | round 2 |\n|---|---|---|---|---|\n");
  double per[2][8];
  for (int round = 0; round < 2; round++)
    for (int w = 0; w < n_ways; w++) {
      double busy = 0;
      for (int i = 0; i < n; i++) {
        if (gap) usleep((useconds_t)gap * 1000);
        double t0 = now_ms();
        one(ways[w]);
        busy += now_ms() - t0;
      }
      per[round][w] = busy / n;
    }
  for (int w = 0; w < n_ways; w++) printf("| %s | %d | %d | %.3f | %.3f |\n", ways[w], n, gap, per[0][w], per[1][w]);
  /* After cgroup.kill: is a child later born in the cgroup killed? */
  printf("\nclone3 into a cgroup after its cgroup.kill:");
  for (int round = 0; round < 3; round++) {
    int status;
    pid_t pid = clone_into(cgroup);
    if (pid == 0) _exit(7);
    waitpid(pid, &status, 0);
    printf(" %s %d", WIFSIGNALED(status) ? "signal" : "exit", WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    int kill_fd = openat(cgroup, "cgroup.kill", O_WRONLY);
    if (kill_fd >= 0) { if (write(kill_fd, "1", 1) < 0) {} close(kill_fd); }
  }
  printf("\n");
  rmdir(dir);
  return 0;
}
