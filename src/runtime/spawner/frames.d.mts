/**
 * Types of frames.mjs and the spawner protocol (see spawner.mjs for the behaviour behind each message).
 * Both directions run over one socket pair, the spawner's fd 3; `id` is the server's number for a task,
 * unique per spawner process.
 *
 * Invariants:
 * - Per task, events come in this order: `started` (or `error` / `withdrawn`, which end it), then `output`
 *   and at most one `exit` and one `closed`, in either order (a task may close its stdout and keep running;
 *   its output may still be draining after the leader exited). No event for an id follows both `exit` and
 *   `closed`, or `release`.
 * - `output` carries the bytes as the frame's data; every other frame has none.
 */

/** Server → spawner. */
export type SpawnerRequest =
  /** Start argv[0] (looked up on env.PATH) in cwd with exactly env, leading its own process group. */
  | { t: 'spawn'; id: number; argv: string[]; cwd: string; env: Record<string, string> }
  /** Cancel before start: drop the spawn if it is still queued (answered by `withdrawn`); else ignored. */
  | { t: 'withdraw'; id: number }
  /** Stop reading the task's output (its drain time is over) and forget it: no more events for it. */
  | { t: 'release'; id: number };

/** Spawner → server. */
export type SpawnerEvent =
  | { t: 'started'; id: number; pid: number }
  /** The spawn failed; `code` is the errno name (ENOENT, EACCES, …) for the server to explain. */
  | { t: 'error'; id: number; code: string; message: string }
  | { t: 'withdrawn'; id: number }
  | { t: 'output'; id: number; stream: 'stdout' | 'stderr' }
  /** The leader exited and was reaped. */
  | { t: 'exit'; id: number; code: number | null; signal: NodeJS.Signals | null }
  /** Both stdout and stderr reached end of file: every output byte was sent before this. */
  | { t: 'closed'; id: number };

export function encodeFrame(header: SpawnerRequest | SpawnerEvent, data?: readonly Buffer[]): Buffer;

export class FrameReader<H = unknown> {
  push(chunk: Buffer, onFrame: (header: H, data: Buffer | null) => void): void;
}
