/** Process checks shared by tests that prove a task's whole process tree is gone. */
import { readFileSync } from 'node:fs';

/** A live process: present in /proc and not a zombie waiting for its parent (or pid 1) to reap it. */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}
