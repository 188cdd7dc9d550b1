/*
 * How a task's leader is started: its spec, its environment, its side of the fork up to the exec, and the
 * cgroup mode's start (clone3 into a pooled folder). Part of computalot-helper.c, included by it (one
 * translation unit; helper-binary.ts hashes this file too). The anchor mode's start is in anchor.h.
 */
#ifndef COMPUTALOT_TASK_START_H
#define COMPUTALOT_TASK_START_H

/* What a task is started with, parsed from its I frame. */
struct task_spec {
  char *cwd;
  unsigned long long mem, nproc; /* RLIMIT_AS bytes, RLIMIT_NPROC; 0 = none */
  char **argv;
  char **env;                    /* complete: task_env */
};

/* The task's side of its fork, up to the exec: its own session and group, stdio on the pipes, its env and
 * limits. Why it could not exec goes to status_w as NOTE_ERRNO; a successful exec closes status_w
 * (O_CLOEXEC). Safe in a vfork child (the anchor's): it only assigns `environ` in the forker's memory. */
static void exec_task(const struct task_spec *t, int out_w, int err_w, int status_w, int in_cgroup) {
  struct note n = { NOTE_ERRNO, 0 };
  /* No anchor to end the tree if the helper dies: the leader goes with it (the rest of the tree stays in
   * its cgroup, for the next helper's sweep). A helper that died before the prctl is no parent any more. */
  if (in_cgroup && (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != self_pid)) _exit(127);
  setsid();
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  signal(SIGPIPE, SIG_DFL);
  dup2(out_w, 1);
  dup2(err_w, 2);
  int devnull = open("/dev/null", O_RDONLY);
  if (devnull >= 0) { dup2(devnull, 0); close(devnull); }
  if (t->mem > 0) { struct rlimit r = { t->mem, t->mem }; setrlimit(RLIMIT_AS, &r); }
  if (t->nproc > 0) { struct rlimit r = { t->nproc, t->nproc }; setrlimit(RLIMIT_NPROC, &r); }
  /* execvp searches the PATH of `environ`: the task's, as its own shell would. */
  environ = t->env;
  struct note reached = { NOTE_EXEC, 0 };
  if (in_cgroup && write(status_w, &reached, sizeof reached) < 0) { /* the helper is gone */ }
  if (chdir(t->cwd) < 0) n.value = errno;
  else { execvp(t->argv[0], t->argv); n.value = errno; }
  if (write(status_w, &n, sizeof n) < 0) { /* nothing left to tell it with */ }
  _exit(127);
}

/* The task's environment: the helper's own (in a sandbox, the image's) with the spec's NAME=value over it.
 * Built before the fork: the task's side of the anchor's vfork must not allocate or setenv in shared memory. */
static char **task_env(char **spec_env, long n) {
  size_t own = 0;
  while (environ[own]) own++;
  char **env = calloc(own + (size_t)n + 1, sizeof(char *));
  size_t k = 0;
  for (size_t i = 0; i < own; i++) {
    size_t name_len = strcspn(environ[i], "=");
    int replaced = 0;
    for (long j = 0; j < n && !replaced; j++)
      replaced = strncmp(spec_env[j], environ[i], name_len) == 0 && spec_env[j][name_len] == '=';
    if (!replaced) env[k++] = environ[i];
  }
  for (long j = 0; j < n; j++) if (strchr(spec_env[j], '=')) env[k++] = spec_env[j];
  return env;
}

/* Starts t's leader in a pooled cgroup, taken into *cg. Returns its pid once its exec succeeded, or -1 with
 * errno (the exec's, if it failed; the failed child is reaped here). A child SIGKILLed before it got to its
 * exec was born in a folder poisoned by an earlier cgroup.kill that the helper did not write (the task
 * wrote it: see cg_release): that folder is retired and the start tried again in a new one. */
static pid_t start_in_cgroup(const struct task_spec *t, int out_w, int err_w, int *cg) {
  for (int tries = 0; tries < 3; tries++) {
    errno = 0;
    if ((*cg = cg_take()) < 0) { if (!errno) errno = EAGAIN; return -1; }
    int st[2];
    if (pipe2(st, O_CLOEXEC) < 0) return -1;
    pid_t pid = cg_fork(*cg);
    if (pid == 0) exec_task(t, out_w, err_w, st[1], 1);
    int fork_errno = errno;
    close(st[1]);
    int reached = 0, child_errno = 0;
    for (struct note n; pid > 0;) {
      ssize_t got = read(st[0], &n, sizeof n);
      if (got < 0 && errno == EINTR) continue;
      if (got != (ssize_t)sizeof n) break;
      if (n.tag == NOTE_EXEC) reached = 1;
      else child_errno = n.value ? n.value : EINVAL;
    }
    close(st[0]);
    if (pid < 0) { errno = fork_errno; return -1; }
    if (reached && !child_errno) return pid; /* EOF after NOTE_EXEC: the exec closed the pipe */
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (child_errno) { errno = child_errno; return -1; }
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) { errno = EIO; return -1; }
    cgs[*cg].killed = 1;
    cg_release(*cg);
    *cg = -1;
  }
  errno = EAGAIN;
  return -1;
}

#endif
