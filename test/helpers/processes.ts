/** Process checks shared by tests that prove a task's whole process tree is gone. */
import { accessSync, constants, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** A live process: present in /proc and not a zombie waiting for its parent (or pid 1) to reap it. */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Where cgroup2 is mounted (/sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid host), if it is. */
export function cgroupMount(): string | undefined {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((line) => line.includes(' - cgroup2 '))?.split(' ')[4];
}

/** The cgroup v2 path of process `pid` (the `0::` line of /proc/<pid>/cgroup). */
export function cgroupOf(pid: number | 'self'): string {
  return readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((line) => line.startsWith('0::'))?.slice(3) ?? '/';
}

/**
 * For `describe(name, { skip: cgroupSkip() }, …)`: why this host cannot give each task a cgroup (the
 * helper's `--cgroups` mode needs root, a cgroup2 mount and a writable cgroup of its own), or false. Under COMPUTALOT_REQUIRE_ALL=1
 * nothing is skipped: the tests then fail if the helper falls back to anchors.
 */
export function cgroupSkip(): string | false {
  if (process.env.COMPUTALOT_REQUIRE_ALL === '1') return false;
  if (process.getuid?.() !== 0) return 'task cgroups need root (or a delegated cgroup2 subtree); the anchor mode is tested instead';
  const mount = cgroupMount();
  if (!mount) return 'no cgroup2 mount: task cgroups are not available here';
  const own = cgroupOf('self');
  try {
    accessSync(join(mount, own), constants.W_OK);
    return false;
  } catch {
    return `this process's cgroup (${join(mount, own)}) is not writable: task cgroups are not available here`;
  }
}
