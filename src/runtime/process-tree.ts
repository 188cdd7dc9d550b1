/**
 * Signalling a task's whole process tree (SPEC §6: SIGTERM, then SIGKILL after the grace period).
 *
 * Invariants:
 * - The task is spawned `detached`, so it leads a new session and process group whose id is its pid; every
 *   descendant that does not call setsid/setpgid itself stays in that group and is reached by `kill(-pgid)`.
 *   A descendant that leaves the group (a daemon that double-forks and calls setsid) is not reached from
 *   here: the helper launcher reaches it through the task's subreaper anchor (`LaunchedTask.signalTree`,
 *   oci/helper/computalot-helper.c); the Node spawner fallback cannot (Node has no prctl).
 * - Signals are sent to the group, never to the leader's pid alone: the leader may already be gone while
 *   its children live on.
 * - The group id is only signalled while it can still name our group: once `kill(-pgid, 0)` says ESRCH the
 *   group is marked gone and never signalled again, so a recycled pid can never be hit.
 * - Zombies count as members until reaped (by pid 1, not by us). That only delays `waitGone` up to its
 *   deadline; after SIGKILL the tree is treated as gone, since SIGKILL cannot be caught or ignored.
 */

export class ProcessGroup {
  private gone = false;

  constructor(readonly pgid: number) {}

  /** Sends `signal` to every member; false when the group no longer exists. */
  signal(signal: NodeJS.Signals | 0): boolean {
    if (this.gone) return false;
    try {
      process.kill(-this.pgid, signal);
      return true;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      // EPERM: a member changed its uid (setuid binary); nothing more we can do to it from here.
      if (code === 'ESRCH') this.gone = true;
      return false;
    }
  }

  isAlive(): boolean {
    return this.signal(0);
  }

  /**
   * Resolves true once no member is left, or false at `deadlineMs` (performance.now() clock). Polls,
   * because nothing notifies us when processes that are not our children exit.
   */
  waitGone(deadlineMs: number, pollMs = 25): Promise<boolean> {
    return new Promise((resolve) => {
      const check = (): void => {
        if (!this.isAlive()) return resolve(true);
        const left = deadlineMs - performance.now();
        if (left <= 0) return resolve(false);
        setTimeout(check, Math.min(pollMs, left));
      };
      check();
    });
  }
}
