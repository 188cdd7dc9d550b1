/*
 * computalot-helper: the resident process inside a warm sandbox (DESIGN §6: `podman exec` per task costs
 * ~170 ms of podman start-up, so tasks are started by this helper instead, in milliseconds).
 *
 * It is PID 1 of the container, started by `podman run -i`, and talks to the worker over its stdin and
 * stdout. Linked statically, so it runs in any image, even one with nothing but /bin/sh. On the host it is
 * the `process` runtime's launcher (src/runtime/helper-launcher.ts), same protocol.
 *
 * Worker -> helper, one command per line:
 *   I <id> <len>\n<len bytes>   start a process; the bytes are NUL-terminated fields: cwd, memory limit
 *                        bytes (0 = none), process limit (0 = none), argc, argv..., envc, env "NAME=value"...
 *                        (applied over the helper's own environment: the image's). Inline, not in a file:
 *                        nothing of a task's env (secrets) is ever written where other tasks could read it.
 *   K <id> <signal>      signal the whole process tree of <id>, escaped descendants included (a no-op once
 *                        the tree is gone). Any K before the leader exits means the worker ends the task: the
 *                        tree then outlives its leader until the worker's K 9 (its grace deadline).
 * Helper -> worker:
 *   S <id> <pid>         started (the exec succeeded); <pid> leads the task's session and group
 *   E <id> <errno>       could not start (chdir or exec failed with this errno); final for <id>
 *   O <id> <1|2> <len>\n<len bytes>   output of stdout (1) or stderr (2)
 *   X <id> c <code> | X <id> s <signal>   the leader exited, sent as soon as it is known: this decides the
 *                        outcome. O frames of <id> may still follow.
 *   D <id>               the whole tree is gone and its output drained: every O of <id> came before. Final.
 *
 * Trees: every task's whole process tree stays within reach, whatever its descendants do (setsid, double
 * fork). Where the host allows it (`--cgroups`, the process runtime on a host with a writable cgroup2),
 * each task runs in a cgroup of its own (task-cgroup.h): the leader is this helper's own child, born in
 * its cgroup (clone3); "the tree" is the cgroup, "gone" is its `populated 0`, and SIGKILL is
 * its `cgroup.kill`. Elsewhere (always in a gVisor sandbox) each task has an anchor, a per-task subreaper
 * forked by the helper (anchor.h), which costs a fork and two wake-ups per task. The mode is on the
 * READY line.
 *
 * Invariants:
 * - Each task leads its own session and group; its parent is its anchor, or the helper in cgroup mode.
 * - When a leader exits on its own (no K came before), the rest of its tree is SIGKILLed at once and again
 *   every KILL_TICK_MS until it is gone (the anchor has no child left; the cgroup is empty); X is written at
 *   once, D once the tree is gone and the pipes reached EOF (or DRAIN_MS after the tree went, if something
 *   outside it holds them).
 * - K signals the leader's group while the leader runs and every process of its cgroup, or every
 *   descendant of the anchor (a /proc scan, which works under gVisor, whose /proc has no `children`
 *   files); K 9 repeats until the tree is gone.
 * - A tree is SIGKILLed when the helper goes: on EOF of stdin by the helper (then it exits); if the helper
 *   dies, an anchor SIGKILLs its tree (PR_SET_PDEATHSIG), and in cgroup mode the leader gets SIGKILL
 *   (PR_SET_PDEATHSIG) and the next helper's start SIGKILLs what is left in the dead helper's cgroups.
 * - The helper is a subreaper too (and PID 1 in a sandbox), so it reaps every orphan (in cgroup mode the
 *   orphans of every task come here, and the cgroup says whose they are); a task that kills its own
 *   anchor is reaped by the helper directly (its exit is still reported) and what it left outside its
 *   group is SIGKILLed as a stray (a direct child of the helper that is no task's leader or anchor).
 * - The helper is not dumpable, so tasks cannot reach its stdin or stdout through /proc/1/fd.
 * - Limits are per process tree: RLIMIT_AS for memory and RLIMIT_NPROC for processes (gVisor enforces both;
 *   a cgroup limit would kill the whole sandbox instead of the one task). Set in the task, not the anchor.
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
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROCS 4096
#define ID_MAX 128
#define DRAIN_MS 2000
#define KILL_TICK_MS 20
#define CHUNK 65536

extern char **environ;

struct proc {
  int used;
  char id[ID_MAX];
  pid_t pid;     /* the task (leader of its session and group) */
  pid_t anchor;  /* its subreaper; 0 once reaped, or lost (killed before it reported the leader's exit), or none */
  int cg;        /* its cgroup (task-cgroup.h) instead of an anchor; -1 if none */
  int out[2];    /* read ends of stdout, stderr; -1 once at EOF */
  int ctl;       /* read end of the anchor's report (the leader's wait status); -1 once closed */
  int failed;    /* the exec failed: E was written, only the anchor's reap is awaited */
  int exited;    /* the leader's exit is known and X was written */
  int status;
  int ending;    /* a K came before the leader exited: the worker decides when the tree is SIGKILLed */
  int killing;   /* SIGKILL the tree on every tick until it is gone */
  int gone;      /* no process of the tree is left (the anchor was reaped) */
  long long gone_at, killed_at;
};

/* What the anchor writes: tagged, since the anchor (pid) and the task (exec errno) share the status pipe. */
struct note { int tag; int value; };
enum { NOTE_PID = 1, NOTE_ERRNO = 2, NOTE_EXEC = 3 /* about to exec (cgroup mode: it got that far) */ };
/* The anchor's report on its control pipe: the leader's wait status, and whether descendants are left. */
struct report { int status; int more; };

static struct proc procs[MAX_PROCS];
static int sigpipe_fds[2];
static pid_t self_pid;
static int lost_anchors; /* > 0: strays (direct children nobody tracks) may exist */
static int subreaper_ok;  /* gVisor has no PR_SET_CHILD_SUBREAPER: there orphans come to PID 1 (us) */

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

/* What one turn of the loop says goes out in one write at its end (flush_out): a leader's exit and its tree's
 * end (X, D) usually come in one turn, read together by the worker. Past OUT_FLUSH bytes it goes at once. */
#define OUT_FLUSH (256 * 1024)
static char *obuf;
static size_t olen, ocap;

static void flush_out(void) {
  if (olen == 0) return;
  write_all(obuf, olen);
  olen = 0;
}

static void emit(const void *buf, size_t len) {
  if (olen + len > ocap) {
    ocap = (olen + len) * 2;
    obuf = realloc(obuf, ocap);
    if (!obuf) _exit(5);
  }
  memcpy(obuf + olen, buf, len);
  olen += len;
  if (olen >= OUT_FLUSH) flush_out();
}

static void say(const char *fmt, ...) {
  char line[ID_MAX + 64];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  emit(line, (size_t)n);
}

static void on_ignored(int sig) { (void)sig; }

/* A task's parent must survive what a task sends its parent (`kill -TERM $PPID`, HUP, USR1…) and a
 * terminal's ^C to the server's group: the helper in cgroup mode, each anchor from its fork on (before it
 * reports the leader's pid). Handlers, not SIG_IGN: exec resets handlers, so tasks start with defaults. */
static void quiet_signals(void) {
  struct sigaction quiet;
  memset(&quiet, 0, sizeof quiet);
  quiet.sa_handler = on_ignored;
  quiet.sa_flags = SA_RESTART;
  int sigs[] = { SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF };
  for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) sigaction(sigs[i], &quiet, NULL);
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

#include "proc-tree.h"
#include "task-cgroup.h"

#include "task-start.h"
#include "anchor.h"

/* The whole tree of p: the leader's group while the leader runs (one atomic kill for most of the tree; once
 * the leader is reaped its pid could name another group), then its cgroup or the anchor's descendants. */
static void signal_tree(struct proc *p, int sig) {
  if (p->gone || p->failed) return;
  if (!p->exited) kill(-p->pid, sig);
  if (p->cg >= 0) cg_signal(p->cg, sig);
  else if (p->anchor > 0) signal_descendants(p->anchor, sig);
  if (sig == SIGKILL) { p->killing = 1; p->killed_at = now_ms(); }
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
  struct task_spec t = { f[0], strtoull(f[1], NULL, 10), strtoull(f[2], NULL, 10), calloc((size_t)argc + 1, sizeof(char *)), NULL };
  for (long i = 0; i < argc; i++) t.argv[i] = f[4 + i];
  t.env = task_env(f + 5 + argc, envc);

  int cg = -1;
  int out[2] = { -1, -1 }, err[2] = { -1, -1 }, status_pipe[2] = { -1, -1 }, ctl[2] = { -1, -1 };
  pid_t pid = 0, anchor = 0;
  int child_errno = 0;
  if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0
      || (cg_root < 0 && (pipe2(status_pipe, O_CLOEXEC) < 0 || pipe2(ctl, O_CLOEXEC | O_NONBLOCK) < 0))) {
    child_errno = errno;
  } else if (cg_root >= 0) {
    /* The leader is our own child, born in its cgroup: nothing sits between us. */
    pid = start_in_cgroup(&t, out[1], err[1], &cg);
    if (pid < 0) { child_errno = errno; pid = 0; }
  } else {
    anchor = launch_anchored(&t, out[1], err[1], status_pipe[1], ctl[1]);
    if (anchor < 0) { child_errno = errno; anchor = 0; }
  }
  int ends[] = { out[1], err[1], status_pipe[1], ctl[1] };
  for (int i = 0; i < 4; i++) if (ends[i] >= 0) close(ends[i]);
  /* Anchor: until EOF, its NOTE_PID, and NOTE_ERRNO if the exec failed (EOF = the exec closed it). */
  for (; status_pipe[0] >= 0 && !child_errno && (pid > 0 || anchor > 0);) {
    struct note n;
    ssize_t got = read(status_pipe[0], &n, sizeof n);
    if (got < 0 && errno == EINTR) continue;
    if (got != (ssize_t)sizeof n) break;
    if (n.tag == NOTE_PID) pid = n.value;
    else child_errno = n.value ? n.value : EINVAL;
  }
  if (status_pipe[0] >= 0) close(status_pipe[0]);
  memset(slot, 0, sizeof *slot);
  slot->used = 1;
  snprintf(slot->id, ID_MAX, "%s", id);
  slot->pid = pid;
  slot->anchor = anchor;
  slot->cg = cg;
  slot->out[0] = out[0];
  slot->out[1] = err[0];
  slot->ctl = ctl[0];
  if (pid <= 0 || child_errno) {
    /* Not started: the slot waits for the anchor's reap (and its cgroup to empty), then goes. */
    for (int s = 0; s < 2; s++) if (slot->out[s] >= 0) close(slot->out[s]);
    slot->out[0] = slot->out[1] = -1;
    slot->failed = 1;
    say("E %s %d\n", id, (int)(child_errno ? child_errno : EAGAIN));
  } else {
    say("S %s %d\n", id, (int)pid);
  }
  free(t.env); free(t.argv); free(f); free(spec);
}

/* The leader exited with `status` (reported by its anchor, or reaped here if its anchor is gone). */
static void leader_exited(struct proc *p, int status, int more) {
  if (p->exited) return;
  p->exited = 1;
  p->status = status;
  if (WIFSIGNALED(status)) say("X %s s %d\n", p->id, WTERMSIG(status));
  else say("X %s c %d\n", p->id, WEXITSTATUS(status));
  /* On its own: nobody waits for what it left, which would hold the output pipes. Ending (a K came first):
   * the rest gets until the worker's K 9, the grace deadline, to finish its SIGTERM handling. */
  if (!p->ending && more) signal_tree(p, SIGKILL);
  if (!p->ending) kill_orphans_without_subreaper();
  /* Nothing left: the anchor is exiting, the tree is gone now (its reap only clears the slot's anchor). */
  if (!more) { p->gone = 1; p->gone_at = now_ms(); }
}

static void read_ctl(struct proc *p) {
  if (p->ctl < 0) return;
  struct report r;
  ssize_t got = read(p->ctl, &r, sizeof r);
  if (got < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (got == (ssize_t)sizeof r) {
    if (!p->failed) leader_exited(p, r.status, r.more);
    return;
  }
  close(p->ctl); /* EOF: the anchor is gone */
  p->ctl = -1;
}

/* Frees p's slot; its cgroup goes back to the pool (it is empty by now). */
static void forget(struct proc *p) {
  if (p->ctl >= 0) { close(p->ctl); p->ctl = -1; }
  if (p->cg >= 0) cg_release(p->cg);
  p->used = 0;
}

static void finish_if_done(struct proc *p, long long now) {
  if (p->failed) {
    /* E was written; the anchor is reaped (or there was none) and nothing is left in the cgroup */
    if (p->anchor == 0 && (p->cg < 0 || cg_populated(p->cg) != 1)) forget(p);
    return;
  }
  /* With a cgroup, "gone" is its populated 0 (cgroup.events, polled while we wait for it) */
  if (p->cg >= 0 && p->exited && !p->gone && cg_populated(p->cg) != 1) { p->gone = 1; p->gone_at = now; }
  if (!p->exited || !p->gone) {
    if (p->killing && !p->gone && now - p->killed_at >= KILL_TICK_MS) signal_tree(p, SIGKILL);
    return;
  }
  if (p->out[0] >= 0 || p->out[1] >= 0) {
    if (now - p->gone_at < DRAIN_MS) return;
    for (int s = 0; s < 2; s++) if (p->out[s] >= 0) { close(p->out[s]); p->out[s] = -1; }
  }
  say("D %s\n", p->id);
  forget(p);
}

static void reap(void) {
  for (;;) {
    int status;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    for (int i = 0; i < MAX_PROCS; i++) {
      struct proc *p = &procs[i];
      if (!p->used) continue;
      if (p->cg >= 0) {
        if (p->pid != pid || p->exited || p->failed) continue;
        leader_exited(p, status, cg_populated(p->cg) == 1);
        break;
      }
      if (p->anchor == pid) {
        read_ctl(p); /* its report may still be in the pipe */
        p->anchor = 0;
        if (p->failed) break;
        if (p->exited) { if (!p->gone) { p->gone = 1; p->gone_at = now_ms(); } break; }
        /* Killed before it reported: the task is now our child (we are a subreaper); its tree is untracked. */
        lost_anchors++;
        break;
      }
      if (p->pid == pid && p->anchor == 0 && !p->exited && !p->failed) {
        leader_exited(p, status, 0);
        if (!p->ending) kill(-pid, SIGKILL); /* what is left of its group */
        p->gone = 1;
        p->gone_at = now_ms();
        kill_strays(); /* what it left outside its group, as far as it is orphaned by now */
        lost_anchors--;
        break;
      }
    }
    kill_strays();
  }
}

static void pump_output(struct proc *p, int s) {
  static char buf[CHUNK];
  ssize_t n = read(p->out[s], buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (n <= 0) { close(p->out[s]); p->out[s] = -1; return; }
  char head[ID_MAX + 48];
  int h = snprintf(head, sizeof head, "O %s %d %zd\n", p->id, s + 1, n);
  emit(head, (size_t)h);
  emit(buf, (size_t)n);
}

static void handle_line(char *line) {
  char *cmd = strtok(line, " ");
  char *id = strtok(NULL, " ");
  char *arg = strtok(NULL, " ");
  if (!cmd || !id || !arg) return;
  if (strcmp(cmd, "K") == 0) {
    struct proc *p = find(id);
    int sig = atoi(arg);
    if (!p || sig <= 0 || p->gone || p->failed) return;
    /* Ending before the anchor's report is read: the worker writes K before it signals the group itself,
     * so a leader that died of that signal must not count as one that exited on its own. */
    if (!p->exited) p->ending = 1;
    read_ctl(p);
    signal_tree(p, sig);
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
  flush_out();
  for (int i = 0; i < MAX_PROCS; i++)
    if (procs[i].used) signal_tree(&procs[i], SIGKILL);
  cg_teardown();
  _exit(0); /* each anchor SIGKILLs what was forked meanwhile (PDEATHSIG), then exits */
}

int main(int argc, char **argv) {
  /* Not dumpable: tasks (root too, without CAP_SYS_PTRACE) cannot open /proc/1/fd/0 or /proc/1/fd/1 to
   * read other tasks' specs (their env) or forge frames. exec() makes each task dumpable again. */
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  /* On the host: the tree of a task that killed its own anchor comes here rather than to init. gVisor
   * refuses its anchors (EINVAL): see kill_orphans_without_subreaper. */
  self_pid = getpid();
  /* gVisor accepts it from PID 1 but not from the anchors (measured): as PID 1 the sweep stays on. */
  subreaper_ok = prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0 && self_pid != 1;
  /* --cgroups: a cgroup per task where the host allows it (the process runtime asks; sandboxes do not). */
  if (argc > 1 && strcmp(argv[1], "--cgroups") == 0 && self_pid != 1) cg_setup();
  /* Then the helper is each leader's parent; the worker ends it by closing stdin (or SIGKILL). */
  if (cg_root >= 0) quiet_signals();
  signal(SIGPIPE, SIG_IGN);
  if (pipe2(sigpipe_fds, O_CLOEXEC | O_NONBLOCK) < 0) return 2;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigchld;
  sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
  sigaction(SIGCHLD, &sa, NULL);
  /* SIGTERM from `podman stop`: end every task, then go (as a sandbox's PID 1, or an anchor-mode helper). */
  if (cg_root < 0) signal(SIGTERM, SIG_DFL);

  size_t in_cap = 1 << 16, in_used = 0;
  char *in = malloc(in_cap);
  int stdin_open = 1;
  struct pollfd *pfds = calloc(2 + 4 * MAX_PROCS, sizeof(struct pollfd));
  struct proc **owners = calloc(2 + 4 * MAX_PROCS, sizeof(struct proc *));
  int *streams = calloc(2 + 4 * MAX_PROCS, sizeof(int));
  /* The mode names how trees are kept: the worker reports it (tests check it is the one expected). */
  if (cg_root >= 0) write_all("READY cgroup\n", 13);
  else write_all("READY anchor\n", 13);

  for (;;) {
    int n = 0;
    /* Commands before exits: a K already written counts, even if the leader's exit woke us (see K). */
    if (stdin_open) { pfds[n].fd = 0; pfds[n].events = POLLIN; owners[n] = NULL; streams[n] = -1; n++; }
    pfds[n].fd = sigpipe_fds[0]; pfds[n].events = POLLIN; owners[n] = NULL; n++;
    int timeout = -1;
    for (int i = 0; i < MAX_PROCS; i++) {
      struct proc *p = &procs[i];
      if (!p->used) continue;
      if (p->killing && !p->gone) timeout = KILL_TICK_MS;
      else if (p->gone && timeout < 0) timeout = 100; /* draining */
      if (p->ctl >= 0) { pfds[n].fd = p->ctl; pfds[n].events = POLLIN; owners[n] = p; streams[n] = 2; n++; }
      /* Its cgroup emptying (finish_if_done reads it, which also rearms the poll). */
      if (p->cg >= 0 && p->exited && !p->gone) { pfds[n].fd = cgs[p->cg].events; pfds[n].events = POLLPRI; owners[n] = p; streams[n] = 3; n++; }
      for (int s = 0; s < 2; s++) {
        if (p->out[s] < 0) continue;
        pfds[n].fd = p->out[s]; pfds[n].events = POLLIN; owners[n] = p; streams[n] = s; n++;
      }
    }
    int r = poll(pfds, (nfds_t)n, timeout);
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
      } else if (streams[i] == 3) {
        /* the cgroup's events changed: finish_if_done below looks */
      } else if (streams[i] == 2) {
        if (owners[i]->used && owners[i]->ctl == pfds[i].fd) read_ctl(owners[i]);
      } else if (owners[i]->used && owners[i]->out[streams[i]] == pfds[i].fd) {
        pump_output(owners[i], streams[i]);
      }
    }
    reap();
    long long now = now_ms();
    for (int i = 0; i < MAX_PROCS; i++) if (procs[i].used) finish_if_done(&procs[i], now);
    flush_out();
  }
}
