/*
 * computalot-helper: the resident process inside a warm sandbox (DESIGN §6: `podman exec` per task costs
 * ~170 ms of podman start-up, so tasks are started by this helper instead, in milliseconds).
 *
 * It is PID 1 of the container, started by `podman run -i`, and talks to the worker over its stdin and
 * stdout. Linked statically, so it runs in any image, even one with nothing but /bin/sh.
 *
 * Worker -> helper, one command per line:
 *   I <id> <len>\n<len bytes>   start a process; the bytes are NUL-terminated fields: cwd, memory limit
 *                        bytes (0 = none), process limit (0 = none), argc, argv..., envc, env "NAME=value"...
 *                        (applied over the helper's own environment: the image's). Inline, not in a file:
 *                        nothing of a task's env (secrets) is ever written where other tasks could read it.
 *   K <id> <signal>      signal the process group of <id> (a no-op once it is gone)
 * Helper -> worker:
 *   S <id> <pid>         started (the exec succeeded)
 *   E <id> <errno>       could not start (chdir or exec failed with this errno); final for <id>
 *   O <id> <1|2> <len>\n<len bytes>   output of stdout (1) or stderr (2)
 *   X <id> c <code> | X <id> s <signal>   the leader exited; every O of <id> came before. Final for <id>.
 *
 * Invariants:
 * - Each process leads its own session and group, so K reaches its whole tree.
 * - When a leader exits, what is left of its group is SIGKILLed (nobody waits for it, and it would hold the
 *   output pipes), then its pipes are drained to EOF, or for at most DRAIN_MS, before X is written.
 * - As PID 1 it reaps every orphan; only leaders are reported. When a leader exits it also SIGKILLs every
 *   process outside the live tracked sessions (daemons that called setsid to escape their group).
 * - On EOF of stdin (the worker went away) every group is SIGKILLed and the helper exits.
 * - The helper is not dumpable, so tasks cannot reach its stdin or stdout through /proc/1/fd.
 * - Limits are per process tree: RLIMIT_AS for memory and RLIMIT_NPROC for processes (gVisor enforces both;
 *   a cgroup limit would kill the whole sandbox instead of the one task).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROCS 4096
#define ID_MAX 128
#define DRAIN_MS 2000
#define CHUNK 65536

extern char **environ;

struct proc {
  int used;
  char id[ID_MAX];
  pid_t pid;
  int out[2]; /* read ends of stdout, stderr; -1 once at EOF */
  int exited;
  int status;
  long long exited_at;
};

static struct proc procs[MAX_PROCS];
static int sigpipe_fds[2];

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void write_all(const void *buf, size_t len) {
  const char *p = buf;
  while (len > 0) {
    ssize_t n = write(1, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      _exit(3); /* the worker is gone: PID 1 exiting takes the sandbox with it */
    }
    p += n;
    len -= (size_t)n;
  }
}

static void say(const char *fmt, ...) {
  char line[ID_MAX + 64];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  write_all(line, (size_t)n);
}

static void on_sigchld(int sig) {
  (void)sig;
  int saved = errno;
  char c = 0;
  if (write(sigpipe_fds[1], &c, 1) < 0) { /* the pipe is full: a wake-up is pending anyway */ }
  errno = saved;
}

/* Splits NUL-terminated fields; returns the count, fills at most max pointers. */
static size_t split_fields(char *buf, size_t len, char **fields, size_t max) {
  size_t n = 0, start = 0;
  for (size_t i = 0; i < len && n < max; i++) {
    if (buf[i] == 0) { fields[n++] = buf + start; start = i + 1; }
  }
  return n;
}

static struct proc *find(const char *id) {
  for (int i = 0; i < MAX_PROCS; i++)
    if (procs[i].used && strcmp(procs[i].id, id) == 0) return &procs[i];
  return NULL;
}

/* Takes ownership of spec (malloc'd, len bytes). */
static void start(const char *id, char *spec, size_t len) {
  if (strlen(id) >= ID_MAX || find(id)) { free(spec); say("E %s %d\n", id, (int)(EINVAL)); return; }
  struct proc *slot = NULL;
  for (int i = 0; i < MAX_PROCS; i++) if (!procs[i].used) { slot = &procs[i]; break; }
  if (!slot) { free(spec); say("E %s %d\n", id, (int)(EAGAIN)); return; }
  size_t max = 1;
  for (size_t i = 0; i < len; i++) max += spec[i] == 0;
  char **f = calloc(max, sizeof(char *));
  size_t nf = split_fields(spec, len, f, max);
  long argc = nf >= 4 ? strtol(f[3], NULL, 10) : -1;
  if (nf < 5 || argc < 1 || (size_t)(4 + argc) >= nf) { free(f); free(spec); say("E %s %d\n", id, (int)(EINVAL)); return; }
  long envc = strtol(f[4 + argc], NULL, 10);
  if (envc < 0 || (size_t)(5 + argc + envc) > nf) { free(f); free(spec); say("E %s %d\n", id, (int)(EINVAL)); return; }
  char *cwd = f[0];
  unsigned long long mem = strtoull(f[1], NULL, 10);
  unsigned long long nproc = strtoull(f[2], NULL, 10);
  char **argv = calloc((size_t)argc + 1, sizeof(char *));
  for (long i = 0; i < argc; i++) argv[i] = f[4 + i];

  int out[2], err[2], status_pipe[2];
  if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 || pipe2(status_pipe, O_CLOEXEC) < 0) {
    say("E %s %d\n", id, (int)(errno));
    free(argv); free(f); free(spec);
    return;
  }
  pid_t pid = fork();
  if (pid == 0) {
    setsid();
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    dup2(out[1], 1);
    dup2(err[1], 2);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) { dup2(devnull, 0); close(devnull); }
    for (long i = 0; i < envc; i++) {
      char *kv = f[5 + argc + i];
      char *eq = strchr(kv, '=');
      if (!eq) continue;
      *eq = 0;
      setenv(kv, eq + 1, 1);
    }
    if (mem > 0) { struct rlimit r = { mem, mem }; setrlimit(RLIMIT_AS, &r); }
    if (nproc > 0) { struct rlimit r = { nproc, nproc }; setrlimit(RLIMIT_NPROC, &r); }
    int e = 0;
    if (chdir(cwd) < 0) e = errno;
    else { execvp(argv[0], argv); e = errno; }
    if (write(status_pipe[1], &e, sizeof e) < 0) { /* nothing left to tell it with */ }
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  close(status_pipe[1]);
  if (pid < 0) {
    say("E %s %d\n", id, (int)(errno));
    close(out[0]); close(err[0]); close(status_pipe[0]);
    free(argv); free(f); free(spec);
    return;
  }
  int child_errno = 0;
  ssize_t got;
  do { got = read(status_pipe[0], &child_errno, sizeof child_errno); } while (got < 0 && errno == EINTR);
  close(status_pipe[0]);
  memset(slot, 0, sizeof *slot);
  slot->used = 1;
  snprintf(slot->id, ID_MAX, "%s", id);
  slot->pid = pid;
  slot->out[0] = out[0];
  slot->out[1] = err[0];
  if (got == (ssize_t)sizeof child_errno) {
    /* exec failed: the child exits at once; its exit is reaped but not reported */
    close(out[0]); close(err[0]);
    slot->out[0] = slot->out[1] = -1;
    slot->exited = 1;
    slot->status = -1;
    say("E %s %d\n", id, (int)(child_errno));
  } else {
    say("S %s %d\n", id, (int)pid);
  }
  free(argv); free(f); free(spec);
}

static void finish_if_done(struct proc *p, long long now) {
  if (!p->exited) return;
  if (p->status == -1) {
    /* exec failure: reported already; wait for the reap only */
    return;
  }
  if (p->out[0] >= 0 || p->out[1] >= 0) {
    if (now - p->exited_at < DRAIN_MS) return;
    for (int s = 0; s < 2; s++) if (p->out[s] >= 0) { close(p->out[s]); p->out[s] = -1; }
  }
  if (WIFSIGNALED(p->status)) say("X %s s %d\n", p->id, WTERMSIG(p->status));
  else say("X %s c %d\n", p->id, WEXITSTATUS(p->status));
  p->used = 0;
}

/* Processes that left their task's session (setsid) escape kill(-pgid): once a tracked process has exited,
 * every process whose session is neither the helper's nor a live tracked one is SIGKILLed. Only as PID 1
 * (in a sandbox): on the host, other sessions are not ours. */
static void kill_strays(void) {
  if (getpid() != 1) return;
  pid_t own = getsid(0);
  DIR *d = opendir("/proc");
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    pid_t pid = (pid_t)atoi(e->d_name);
    if (pid <= 1) continue;
    pid_t sid = getsid(pid);
    if (sid < 0 || sid == own) continue;
    int live = 0;
    for (int i = 0; i < MAX_PROCS && !live; i++)
      if (procs[i].used && !procs[i].exited && procs[i].pid == sid) live = 1;
    if (!live) kill(pid, SIGKILL);
  }
  closedir(d);
}

static void reap(void) {
  for (;;) {
    int status;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    for (int i = 0; i < MAX_PROCS; i++) {
      struct proc *p = &procs[i];
      if (!p->used || p->pid != pid) continue;
      if (p->exited && p->status == -1) { p->used = 0; break; }
      if (p->exited) continue; /* a draining slot whose pid was reused: not this one */
      p->exited = 1;
      p->status = status;
      p->exited_at = now_ms();
      kill(-pid, SIGKILL); /* leftovers of its group */
      kill_strays();
      break;
    }
  }
}

static void pump_output(struct proc *p, int s) {
  static char buf[CHUNK];
  ssize_t n = read(p->out[s], buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (n <= 0) { close(p->out[s]); p->out[s] = -1; return; }
  char head[ID_MAX + 48];
  int h = snprintf(head, sizeof head, "O %s %d %zd\n", p->id, s + 1, n);
  write_all(head, (size_t)h);
  write_all(buf, (size_t)n);
}

static void handle_line(char *line) {
  char *cmd = strtok(line, " ");
  char *id = strtok(NULL, " ");
  char *arg = strtok(NULL, " ");
  if (!cmd || !id || !arg) return;
  if (strcmp(cmd, "K") == 0) {
    struct proc *p = find(id);
    int sig = atoi(arg);
    if (p && !p->exited && sig > 0) kill(-p->pid, sig);
  }
}

/* Handles every complete command at the start of buf: lines, and I frames (a line, then its bytes). */
static void consume_input(char *buf, size_t *used) {
  size_t off = 0;
  for (;;) {
    char *nl = memchr(buf + off, '\n', *used - off);
    if (!nl) break;
    size_t line_len = (size_t)(nl - (buf + off));
    if (line_len > 0 && buf[off] == 'I') {
      char id[ID_MAX];
      unsigned long long len = 0;
      char fmt[32];
      snprintf(fmt, sizeof fmt, "I %%%ds %%llu", ID_MAX - 1);
      *nl = 0;
      int ok = sscanf(buf + off, fmt, id, &len) == 2;
      *nl = '\n';
      if (!ok) { off += line_len + 1; continue; }
      if (*used - (off + line_len + 1) < len) break; /* the bytes are not all here yet */
      char *spec = malloc(len + 1);
      memcpy(spec, nl + 1, len);
      spec[len] = 0;
      off += line_len + 1 + len;
      start(id, spec, len);
      continue;
    }
    *nl = 0;
    handle_line(buf + off);
    off += line_len + 1;
  }
  memmove(buf, buf + off, *used - off);
  *used -= off;
}

static void shutdown_all(void) {
  for (int i = 0; i < MAX_PROCS; i++)
    if (procs[i].used && !procs[i].exited) kill(-procs[i].pid, SIGKILL);
  _exit(0);
}

int main(void) {
  /* Not dumpable: tasks (root too, without CAP_SYS_PTRACE) cannot open /proc/1/fd/0 or /proc/1/fd/1 to
   * read other tasks' specs (their env) or forge frames. exec() makes each task dumpable again. */
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  signal(SIGPIPE, SIG_IGN);
  if (pipe2(sigpipe_fds, O_CLOEXEC | O_NONBLOCK) < 0) return 2;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigchld;
  sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
  sigaction(SIGCHLD, &sa, NULL);
  /* SIGTERM from `podman stop`: end every task, then go. */
  signal(SIGTERM, SIG_DFL);

  size_t in_cap = 1 << 16, in_used = 0;
  char *in = malloc(in_cap);
  int stdin_open = 1;
  struct pollfd *pfds = calloc(2 + 2 * MAX_PROCS, sizeof(struct pollfd));
  struct proc **owners = calloc(2 + 2 * MAX_PROCS, sizeof(struct proc *));
  int *streams = calloc(2 + 2 * MAX_PROCS, sizeof(int));
  write_all("READY\n", 6);

  for (;;) {
    int n = 0;
    pfds[n].fd = sigpipe_fds[0]; pfds[n].events = POLLIN; owners[n] = NULL; n++;
    if (stdin_open) { pfds[n].fd = 0; pfds[n].events = POLLIN; owners[n] = NULL; streams[n] = -1; n++; }
    int draining = 0;
    for (int i = 0; i < MAX_PROCS; i++) {
      struct proc *p = &procs[i];
      if (!p->used) continue;
      if (p->exited) draining = 1;
      for (int s = 0; s < 2; s++) {
        if (p->out[s] < 0) continue;
        pfds[n].fd = p->out[s]; pfds[n].events = POLLIN; owners[n] = p; streams[n] = s; n++;
      }
    }
    int r = poll(pfds, (nfds_t)n, draining ? 100 : -1);
    if (r < 0 && errno != EINTR) return 4;
    for (int i = 0; i < n && r > 0; i++) {
      if (!pfds[i].revents) continue;
      if (pfds[i].fd == sigpipe_fds[0]) {
        char drain[64];
        while (read(sigpipe_fds[0], drain, sizeof drain) > 0) {}
        reap();
      } else if (owners[i] == NULL) {
        if (in_used + 65536 > in_cap) { in_cap = (in_used + 65536) * 2; in = realloc(in, in_cap); }
        ssize_t got = read(0, in + in_used, in_cap - in_used);
        if (got <= 0) {
          if (got < 0 && errno == EINTR) continue;
          stdin_open = 0;
          shutdown_all();
        }
        in_used += (size_t)got;
        consume_input(in, &in_used);
      } else if (owners[i]->used && owners[i]->out[streams[i]] == pfds[i].fd) {
        pump_output(owners[i], streams[i]);
      }
    }
    reap();
    long long now = now_ms();
    for (int i = 0; i < MAX_PROCS; i++) if (procs[i].used) finish_if_done(&procs[i], now);
  }
}
