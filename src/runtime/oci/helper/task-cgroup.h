/*
 * A cgroup v2 per task, on the host (the `process` runtime, started with --cgroups): the part of
 * computalot-helper.c that keeps each task's process tree in its own cgroup, included by it (one
 * translation unit; helper-binary.ts hashes this file too).
 *
 * Why: a cgroup holds every descendant whatever it does (setsid, double fork, reparenting), `cgroup.kill`
 * SIGKILLs all of them atomically (forks in flight included), and `populated 0` in `cgroup.events` says the
 * tree is gone. The task's leader stays the helper's own child, born in its cgroup (cg_fork), so no
 * per-task process sits between them: the anchor (the fallback, see the .c file's header) costs a fork and two wake-ups per
 * task, which on 2 busy vCPUs took the 10,000-task fan-out from ~1,030 to ~900 tasks/s (docs/decisions.md).
 *
 * Layout: <the helper's own cgroup>/computalot-helper-<pid>/t<n>. The t<n> are pooled: one is taken per
 * task and given back once it is empty, so a task costs no mkdir/rmdir. A helper that died (SIGKILL, a
 * crash) leaves its folder; the next helper on the machine SIGKILLs what is left in it and removes it.
 *
 * Needs: a cgroup2 mount, clone3 with CLONE_INTO_CGROUP (Linux 5.7) and cgroup.kill (5.14), and the right
 * to create folders under the helper's cgroup and to place processes in them (root, or a delegated
 * subtree). Checked once at start by moving a probe child; without it the
 * helper keeps anchors. gVisor has no cgroup2: sandboxes always use anchors.
 */
#ifndef COMPUTALOT_TASK_CGROUP_H
#define COMPUTALOT_TASK_CGROUP_H

#include <limits.h>
#include <linux/sched.h> /* struct clone_args, CLONE_INTO_CGROUP */
#include <stdint.h>

struct cg {
  int dir;       /* the t<n> folder: clone3 places a task's leader in it; -1 while there is none */
  int events;    /* its cgroup.events: "populated 0|1", pollable (POLLPRI) */
  unsigned name; /* n */
  int busy;
  int killed;    /* cgroup.kill was written: never used again (see cg_release) */
};

static int cg_root = -1; /* computalot-helper-<pid>; -1: no cgroups, anchors instead */
static char cg_root_path[PATH_MAX];
static struct cg *cgs;
static int cg_len, cg_cap;
static unsigned cg_names; /* folders made so far: each gets a new name */

static int cg_write(int dirfd, const char *file, const char *text) {
  int fd = openat(dirfd, file, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = write(fd, text, strlen(text));
  close(fd);
  return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* 1 while any process is in the cgroup (or below), 0 once none is, -1 if unreadable. */
static int cg_populated_fd(int events) {
  char buf[256];
  ssize_t n = pread(events, buf, sizeof buf - 1, 0);
  if (n <= 0) return -1;
  buf[n] = 0;
  char *p = strstr(buf, "populated ");
  return p ? p[10] == '1' : -1;
}

static int cg_populated_at(int dirfd) {
  int fd = openat(dirfd, "cgroup.events", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  int r = cg_populated_fd(fd);
  close(fd);
  return r;
}

/* Folders below a cgroup: tasks may make their own (root can). Nested deeper than this, they are left. */
#define CG_MAX_DEPTH 32

/* Whether the folder has sub-folders: kernfs counts them in its link count (2 + sub-folders). */
static int cg_has_children(int dir) {
  struct stat st;
  return fstat(dir, &st) == 0 && st.st_nlink > 2;
}

/* Calls visit(dir, name, depth + 1) for each sub-folder of dir. */
static void cg_each_child(int dir, void (*visit)(int parent, const char *name, int depth), int depth) {
  if (depth >= CG_MAX_DEPTH || !cg_has_children(dir)) return;
  int dup_fd = dup(dir);
  DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
  if (!d) { if (dup_fd >= 0) close(dup_fd); return; }
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (e->d_type == DT_DIR && e->d_name[0] != '.') visit(dir, e->d_name, depth + 1);
  closedir(d);
}

/* Removes the empty cgroup `name` under parent and every folder below it, deepest first. */
static void cg_rmdir_tree(int parent, const char *name, int depth) {
  int dir = openat(parent, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) { cg_each_child(dir, cg_rmdir_tree, depth); close(dir); }
  unlinkat(parent, name, AT_REMOVEDIR);
}

/* SIGKILLs everything in the cgroup `name` and below, waits up to 1 s for it to empty, removes the folders. */
static void cg_remove_tree(int parent, const char *name) {
  int dir = openat(parent, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return;
  cg_write(dir, "cgroup.kill", "1");
  for (int i = 0; i < 100 && cg_populated_at(dir) == 1; i++) usleep(10000);
  close(dir);
  cg_rmdir_tree(parent, name, 0);
}

/* The folders of helpers that are gone (their pid is no process any more): what they left is ended. */
static void cg_sweep_dead(int parent) {
  int dup_fd = dup(parent);
  DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
  if (!d) { if (dup_fd >= 0) close(dup_fd); return; }
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strncmp(e->d_name, "computalot-helper-", 18) != 0) continue;
    long pid = strtol(e->d_name + 18, NULL, 10);
    if (pid <= 0 || pid == self_pid || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
    cg_remove_tree(parent, e->d_name);
  }
  closedir(d);
}

/* Makes a fresh folder for pool entry i; 0, or -1. */
static int cg_make(int i) {
  struct cg c = { -1, -1, cg_names++, 0, 0 };
  char name[32];
  snprintf(name, sizeof name, "t%u", c.name);
  if (mkdirat(cg_root, name, 0755) < 0) return -1;
  c.dir = openat(cg_root, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (c.dir >= 0) c.events = openat(c.dir, "cgroup.events", O_RDONLY | O_CLOEXEC);
  if (c.dir < 0 || c.events < 0) {
    if (c.dir >= 0) close(c.dir);
    unlinkat(cg_root, name, AT_REMOVEDIR);
    return -1;
  }
  cgs[i] = c;
  return 0;
}

/* A free t<n>, made on first need; -1 if none can be made. */
static int cg_take(void) {
  int absent = -1;
  for (int i = 0; i < cg_len; i++) {
    if (!cgs[i].busy && cgs[i].dir >= 0) { cgs[i].busy = 1; return i; }
    if (cgs[i].dir < 0 && absent < 0) absent = i;
  }
  if (absent < 0) {
    if (cg_len == cg_cap) {
      int cap = cg_cap ? cg_cap * 2 : 16;
      struct cg *grown = realloc(cgs, (size_t)cap * sizeof *cgs);
      if (!grown) return -1;
      cgs = grown;
      cg_cap = cap;
    }
    absent = cg_len++;
    cgs[absent].dir = -1;
    cgs[absent].busy = 0;
  }
  if (cg_make(absent) < 0) return -1;
  cgs[absent].busy = 1;
  return absent;
}

/* Given back only once empty (populated 0): the next task's tree starts alone. Removed instead, its entry
 * getting a new folder on next need, when it was cgroup.kill'ed: on Linux 6.18 (measured here) every
 * process later born in it with CLONE_INTO_CGROUP is SIGKILLed at once (the kernel compares the kill count
 * of the forker's cgroup with the target's). A task may write cgroup.kill itself: start_in_cgroup notices
 * that one when the next child dies before its exec. Removed too when the task left sub-folders. */
static void cg_release(int i) {
  if (i < 0 || i >= cg_len) return;
  cgs[i].busy = 0;
  if (!cgs[i].killed && !cg_has_children(cgs[i].dir)) return;
  char name[32];
  snprintf(name, sizeof name, "t%u", cgs[i].name);
  close(cgs[i].dir);
  close(cgs[i].events);
  cgs[i].dir = cgs[i].events = -1;
  cg_rmdir_tree(cg_root, name, 0); /* what fails to go stays until the helper's teardown */
}

static int cg_populated(int i) {
  return cg_populated_fd(cgs[i].events);
}

static int cg_sig; /* the signal cg_signal sends (a walk's callback takes no more arguments) */

/* Signals each pid the folder's cgroup.procs lists. */
static void cg_signal_procs(int dir) {
  int fd = openat(dir, "cgroup.procs", O_RDONLY | O_CLOEXEC);
  FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
  if (!f && fd >= 0) close(fd);
  long pid;
  while (f && fscanf(f, "%ld", &pid) == 1) if (pid > 0) kill((pid_t)pid, cg_sig);
  if (f) fclose(f);
}

static void cg_signal_tree(int parent, const char *name, int depth) {
  int dir = openat(parent, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return;
  cg_signal_procs(dir);
  cg_each_child(dir, cg_signal_tree, depth);
  close(dir);
}

/* Signals every process in cgroup i and below. SIGKILL is cgroup.kill: atomic, forks in flight included.
 * Any other signal goes to each pid cgroup.procs lists: one that forks meanwhile may leave its child
 * unsignalled, which the worker's SIGKILL at the grace deadline still reaches. */
static void cg_signal(int i, int sig) {
  if (sig == SIGKILL) { cgs[i].killed = 1; cg_write(cgs[i].dir, "cgroup.kill", "1"); return; }
  cg_sig = sig;
  cg_signal_procs(cgs[i].dir);
  cg_each_child(cgs[i].dir, cg_signal_tree, 0);
}

/* fork(), with the child born in cgroup i (clone3's CLONE_INTO_CGROUP, Linux 5.7). Not vfork and a write
 * of "0" to cgroup.procs: moving a process takes the cgroup threadgroup lock for writing, which waits for
 * an RCU grace period once the lock has been idle: ~12 ms per task when tasks come one at a time, measured
 * (docs/decisions.md). Being born in the cgroup takes it for reading only. */
static pid_t cg_fork(int i) {
  struct clone_args args;
  memset(&args, 0, sizeof args);
  args.flags = CLONE_INTO_CGROUP;
  args.exit_signal = SIGCHLD;
  args.cgroup = (uint64_t)cgs[i].dir;
  return (pid_t)syscall(SYS_clone3, &args, sizeof args);
}

/* The first line of /proc/self/cgroup that starts with `0::`: the helper's cgroup v2 path. */
static int cg_own_path(char *out, size_t size) {
  FILE *f = fopen("/proc/self/cgroup", "re");
  if (!f) return -1;
  char line[PATH_MAX + 8];
  int found = -1;
  while (found == -1 && fgets(line, sizeof line, f)) {
    if (strncmp(line, "0::", 3) != 0) continue;
    line[strcspn(line, "\n")] = 0;
    found = (size_t)snprintf(out, size, "%s", line + 3) < size ? 0 : -2;
  }
  fclose(f);
  return found < 0 ? -1 : 0;
}

/* The cgroup2 mount point from /proc/self/mountinfo (field 5; the fs type follows " - "). */
static int cg_mount_point(char *out, size_t size) {
  FILE *f = fopen("/proc/self/mountinfo", "re");
  if (!f) return -1;
  char line[4096];
  int found = -1;
  while (found < 0 && fgets(line, sizeof line, f)) {
    char *sep = strstr(line, " - ");
    if (!sep || strncmp(sep + 3, "cgroup2 ", 8) != 0) continue;
    char mnt[PATH_MAX];
    if (sscanf(line, "%*s %*s %*s %*s %4095s", mnt) == 1) { snprintf(out, size, "%s", mnt); found = 0; }
  }
  fclose(f);
  return found;
}

/* Sets up cgroup mode; on any failure leaves cg_root at -1 (anchors) with nothing left behind. */
static void cg_setup(void) {
  char mnt[PATH_MAX], own[PATH_MAX];
  if (cg_mount_point(mnt, sizeof mnt) < 0 || cg_own_path(own, sizeof own) < 0) return;
  char parent_path[PATH_MAX];
  /* A path too long to hold is no cgroup mode, rather than a wrong folder. */
  if ((size_t)snprintf(parent_path, sizeof parent_path, "%s%s", mnt, strcmp(own, "/") == 0 ? "" : own) >= sizeof parent_path
      || strlen(parent_path) + 40 >= sizeof cg_root_path) return;
  int parent = open(parent_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (parent < 0) return;
  cg_sweep_dead(parent);
  char name[64];
  snprintf(name, sizeof name, "computalot-helper-%d", (int)self_pid);
  /* Ours already, from a dead helper that had our pid: what it left is ended and the folder made anew. */
  cg_remove_tree(parent, name);
  if (mkdirat(parent, name, 0755) < 0) { close(parent); return; }
  cg_root = openat(parent, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  snprintf(cg_root_path, sizeof cg_root_path, "%s/%s", parent_path, name);
  /* The probe: a child born in a task cgroup the way every task will be, and cgroup.kill must exist. */
  int i = cg_root >= 0 ? cg_take() : -1;
  int ok = 0;
  if (i >= 0 && faccessat(cgs[i].dir, "cgroup.kill", W_OK, 0) == 0) {
    pid_t pid = cg_fork(i);
    if (pid == 0) _exit(0);
    int status;
    ok = pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }
  if (i >= 0) cg_release(i);
  if (!ok) {
    for (int k = 0; k < cg_len; k++) if (cgs[k].dir >= 0) { close(cgs[k].dir); close(cgs[k].events); }
    cg_len = 0;
    if (cg_root >= 0) close(cg_root);
    cg_root = -1;
    cg_remove_tree(parent, name);
  }
  close(parent);
}

/* At the helper's end: SIGKILL every task's tree, remove the folders (best effort: a tree that takes over
 * 1 s to die keeps its folder until the next helper's sweep). */
static void cg_teardown(void) {
  if (cg_root < 0) return;
  char *slash = strrchr(cg_root_path, '/');
  if (!slash) return;
  *slash = 0;
  int parent = open(cg_root_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (parent >= 0) { cg_remove_tree(parent, slash + 1); close(parent); }
}

#endif
