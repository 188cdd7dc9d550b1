/*
 * The anchor: the per-task subreaper that keeps a task's process tree within reach where cgroups cannot
 * (in a gVisor sandbox, or on a host without a writable cgroup2; task-cgroup.h is the other way). Part of
 * computalot-helper.c, included by it (one translation unit; helper-binary.ts hashes this file too).
 *
 * Every task is started through an intermediary, a fork of the helper that makes itself a child subreaper
 * (PR_SET_CHILD_SUBREAPER) and forks the task. Whatever the task's descendants do (setsid, setpgid, double
 * fork), an orphan is reparented to the anchor, never beyond it, so "the task's tree" is exactly "the
 * anchor's descendants" and "the tree is gone" is "the anchor has no child left" (it then exits, and its
 * reap is the signal). The alternatives were weaker: COMPUTALOT_TASK_ID in /proc/<pid>/environ is lost by
 * anything started with a fresh env (`env -i`, subprocess env=, sudo) and only exists for tasks, not for
 * services or validation commands; one subreaper (the helper) for all tasks cannot tell whose an orphan is
 * once several run. The anchor costs one fork of this small static process per task and two more
 * wake-ups (docs/decisions.md, "the anchor's price"); it adds no syscall to the leader itself.
 * gVisor refuses PR_SET_CHILD_SUBREAPER to the anchors (EINVAL, measured with runsc here): in a sandbox an
 * orphan goes to PID 1, the helper, and the anchor still reaches every descendant that is not orphaned; as
 * PID 1 the helper SIGKILLs what left its task's session whenever a leader exits on its own
 * (kill_orphans_without_subreaper).
 */
#ifndef COMPUTALOT_ANCHOR_H
#define COMPUTALOT_ANCHOR_H

/* A direct child of the helper that is neither a task nor an anchor: what a task whose anchor it killed
 * left behind. Only looked for while such a task exists or existed. */
static void kill_strays(void) {
  if (lost_anchors == 0) return;
  scan_procs();
  for (size_t i = 0; i < table_len; i++) {
    if (table[i].ppid != self_pid) continue;
    int tracked = 0;
    for (int k = 0; k < MAX_PROCS && !tracked; k++)
      tracked = procs[k].used && (procs[k].pid == table[i].pid || procs[k].anchor == table[i].pid);
    if (!tracked) kill(table[i].pid, SIGKILL);
  }
}

/* Without subreapers (gVisor), an orphan is reparented to PID 1 and no anchor can say whose it is: as PID
 * 1, when a leader exits on its own, every process whose session is neither ours nor that of a tree still
 * alive is SIGKILLed (daemons that called setsid to escape). Other tasks' escaped daemons go with it, and
 * a SIGTERMed tree's escaped daemons do not get their grace: the sandbox's limit, not the host's. */
static void kill_orphans_without_subreaper(void) {
  if (subreaper_ok || self_pid != 1) return;
  pid_t own = getsid(0);
  scan_procs();
  for (size_t i = 0; i < table_len; i++) {
    pid_t sid = getsid(table[i].pid);
    if (table[i].pid <= 1 || sid < 0 || sid == own) continue;
    int live = 0;
    /* A tree whose leader exited on its own is not alive any more, whatever is left of it. */
    for (int k = 0; k < MAX_PROCS && !live; k++)
      live = procs[k].used && !procs[k].gone && (!procs[k].exited || procs[k].ending) && procs[k].pid == sid;
    if (!live) kill(table[i].pid, SIGKILL);
  }
}

static void on_pdeath(int sig) { (void)sig; }

/* The anchor's life after forking the task: reap every descendant that ends (they are all reparented here),
 * report the leader's wait status, exit once no child is left. If the helper dies first, SIGKILL the tree
 * (nobody could report it any more). Never returns. */
static void anchor_loop(pid_t task, pid_t helper, int ctl) {
  int orphaned = 0;
  /* TERM, INT (a terminal's ^C to the server's group), QUIT…: caught and ignored since the fork (quiet_signals) */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_pdeath; /* no SA_RESTART: the blocking waitpid below returns EINTR */
  sigaction(SIGHUP, &sa, NULL);
  prctl(PR_SET_PDEATHSIG, SIGHUP, 0, 0, 0);
  if (getppid() != helper) orphaned = 1;
  for (;;) {
    if (orphaned) signal_descendants(getpid(), SIGKILL);
    int status;
    pid_t pid = waitpid(-1, &status, orphaned ? WNOHANG : 0);
    if (pid < 0 && errno == ECHILD) _exit(0);
    if (pid < 0) { if (getppid() != helper) orphaned = 1; continue; }
    if (pid == 0) { usleep(KILL_TICK_MS * 1000); continue; }
    if (pid != task) continue;
    /* Are descendants left? Reap what already ended; ECHILD means none, 0 means some still run. */
    struct report r = { status, 1 };
    for (;;) {
      pid_t more = waitpid(-1, &status, WNOHANG);
      if (more > 0) continue;
      if (more < 0 && errno == EINTR) continue;
      if (more < 0) r.more = 0;
      break;
    }
    if (write(ctl, &r, sizeof r) < 0) { /* the helper is gone: PDEATHSIG handles the rest */ }
    if (!r.more) _exit(0);
  }
}


/* Forks the task's anchor, which forks the task (exec_task) and reports the leader's pid, then its wait
 * status on ctl. Returns the anchor's pid, or -1 (errno set). */
static pid_t launch_anchored(const struct task_spec *t, int out_w, int err_w, int status_w, int ctl_w) {
  pid_t anchor = fork();
  if (anchor != 0) return anchor;
  signal(SIGCHLD, SIG_DFL); /* the helper's handler writes to the helper's wake-up pipe */
  quiet_signals(); /* before the task can run: one that signals its parent at once must not end us */
  prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  /* vfork: the task runs at once on this CPU, with no page tables to copy, until its exec; the anchor
   * resumes then. What the task changes before its exec (environ) lands in the anchor's copy of the
   * helper's memory, which nothing reads afterwards. */
  pid_t pid = vfork();
  if (pid == 0) exec_task(t, out_w, err_w, status_w, 0);
  struct note n = { pid < 0 ? NOTE_ERRNO : NOTE_PID, pid < 0 ? errno : (int)pid };
  if (write(status_w, &n, sizeof n) < 0) { /* the helper reads it, or is gone */ }
  if (pid < 0) _exit(127);
  /* Keep only the control pipe, as fd 0: the helper's stdin/stdout (the worker's pipes), other tasks'
   * pipes and this task's write ends must not be held open by the anchor. */
  dup2(ctl_w, 0);
  if (syscall(SYS_close_range, 1U, ~0U, 0U) < 0) for (int fd = 1; fd < 65536; fd++) close(fd);
  anchor_loop(pid, self_pid, 0);
  return -1; /* not reached: anchor_loop exits */
}

#endif
