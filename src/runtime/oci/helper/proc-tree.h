/*
 * The process table as /proc shows it, and signalling a process's descendants from it: the part of
 * computalot-helper.c that walks /proc (included by it, one translation unit: the helper is compiled from
 * its one .c file, and helper-binary.ts hashes both files to name the binary).
 *
 * Uses /proc/<pid>/stat only: gVisor's /proc has no `children` files.
 */
#ifndef COMPUTALOT_PROC_TREE_H
#define COMPUTALOT_PROC_TREE_H

/* Every process's (pid, ppid), from /proc/<pid>/stat: the one source that gVisor has too. */
struct pp { pid_t pid, ppid; int mark; long parent; /* index of ppid's entry, -1 if none */ };
static struct pp *table;
static size_t table_len, table_cap;

static void scan_procs(void) {
  table_len = 0;
  DIR *d = opendir("/proc");
  if (!d) return;
  struct dirent *e;
  char path[64], buf[512];
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    int pid = atoi(e->d_name);
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) continue;
    buf[n] = 0;
    char *rp = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    if (!rp) continue;
    char state;
    int ppid;
    if (sscanf(rp + 1, " %c %d", &state, &ppid) != 2) continue;
    if (table_len == table_cap) {
      table_cap = table_cap ? table_cap * 2 : 1024;
      table = realloc(table, table_cap * sizeof *table);
    }
    table[table_len++] = (struct pp){ (pid_t)pid, (pid_t)ppid, 0, -1 };
  }
  closedir(d);
}

static int by_pid(const void *a, const void *b) {
  pid_t x = ((const struct pp *)a)->pid, y = ((const struct pp *)b)->pid;
  return (x > y) - (x < y);
}

/* Signals every descendant of `root` (not root itself), from one scan. A process forked while this runs
 * can be missed: callers that must end the tree repeat it (SIGKILL) until the anchor has no child left. */
static void signal_descendants(pid_t root, int sig) {
  scan_procs();
  qsort(table, table_len, sizeof *table, by_pid);
  for (size_t i = 0; i < table_len; i++) {
    struct pp key = { table[i].ppid, 0, 0, -1 };
    struct pp *parent = bsearch(&key, table, table_len, sizeof *table, by_pid);
    table[i].parent = parent ? parent - table : -1;
  }
  /* One pass per generation: a process is in once its parent is the root or in. */
  for (int grew = 1; grew;) {
    grew = 0;
    for (size_t i = 0; i < table_len; i++) {
      if (table[i].mark || table[i].pid == root) continue;
      if (table[i].ppid == root || (table[i].parent >= 0 && table[table[i].parent].mark)) {
        table[i].mark = 1;
        grew = 1;
        kill(table[i].pid, sig);
      }
    }
  }
}

#endif
