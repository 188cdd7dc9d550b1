/**
 * The slots of a worker: at most `size` attempts execute at once, whatever the agent holds leased.
 * Waiters are served first come, first served (so tasks start in the order they were leased), and a
 * waiter whose task is cancelled leaves the line without ever taking a slot.
 */
export class SlotGate {
  private busy = 0;
  private readonly line: Array<() => void> = [];

  constructor(readonly size: number) {}

  /** Attempts executing now. */
  get taken(): number {
    return this.busy;
  }

  /**
   * Resolves true once a slot is taken (the caller must `release()` it), or false if `gone` settles
   * first: then no slot was taken.
   */
  take(gone: Promise<unknown>): Promise<boolean> {
    if (this.busy < this.size && this.line.length === 0) {
      this.busy += 1;
      return Promise.resolve(true);
    }
    return new Promise<boolean>((resolve) => {
      const grant = () => {
        this.busy += 1;
        resolve(true);
      };
      this.line.push(grant);
      void gone.then(() => {
        const i = this.line.indexOf(grant);
        if (i < 0) return; // already granted: the caller holds a slot and releases it
        this.line.splice(i, 1);
        resolve(false);
      });
    });
  }

  release(): void {
    this.busy -= 1;
    const next = this.line.shift();
    if (next) next();
  }
}
