// @ts-check
/**
 * The spawner (a "zygote"): a small, long-lived Node process that the `process` runtime starts once and
 * that forks every task process on request. fork() copies the page tables of its caller, so it costs
 * ~2.5 ms on the main thread of a ~200 MB server under tsx and ~0.8 ms here; and it runs on another core.
 * Run by bare `node spawner.mjs` with the channel on fd 3 (protocol: frames.d.mts). Plain JavaScript
 * that loads only node: built-ins and frames.mjs, so it starts in tens of milliseconds without tsx.
 *
 * Invariants:
 * - Tasks are spawned `detached` (setsid): each leads its own process group, which the server signals
 *   directly with kill(-pid) (same user, and it still works when this process is dead), so there is no
 *   signal request. They get exactly the env they are sent, stdin /dev/null, stdout/stderr pipes to here.
 *   fd 3 is close-on-exec in here (as found at startup; spawner.test.ts checks it), so tasks never
 *   inherit the channel.
 * - Node reaps every child it spawned (SIGCHLD → waitpid), and `exit` is sent after the reap: no zombies.
 * - `started` is written the moment spawn() returns, not batched: the server can then kill the group of a
 *   task it knows, should this process die; and it is the dispatch latency. Spawns run one per event-loop
 *   turn, so a `withdraw` read in between still stops a queued one (a cancel before start never starts).
 * - Everything else is batched: events queue up during a turn and go out in one write after the turn's
 *   I/O (setImmediate); consecutive output chunks of one stream of one task become one frame. Order is
 *   kept exactly: only adjacent chunks merge.
 * - Backpressure: when the server reads more slowly than tasks write, every task's pipes are paused until
 *   the channel drains, so tasks block on their writes instead of this process buffering without bound.
 * - Its life is the channel's: on end of file or error (the server exited or crashed) it SIGKILLs the
 *   groups of tasks still running (nobody could report them any more) and exits. SIGINT/SIGTERM/SIGHUP are
 *   ignored: a Ctrl-C to the terminal's process group or systemd's SIGTERM to the service must not cut the
 *   tasks off before the server's graceful shutdown has cancelled them.
 */
import { spawn } from 'node:child_process';
import { Socket } from 'node:net';
import { encodeFrame, FrameReader } from './frames.mjs';

/** @typedef {import('./frames.mjs').SpawnerRequest} Request */
/** @typedef {import('./frames.mjs').SpawnerEvent} Event */
/** @typedef {Extract<Request, { t: 'spawn' }>} SpawnRequest */
/** @typedef {{ id: number, pid: number, streams: import('node:stream').Readable[], open: number, exited: boolean }} Task */

/** Unsent bytes above which tasks' pipes are paused. */
const PAUSE_BYTES = 1024 * 1024;
const channel = new Socket({ fd: 3, readable: true, writable: true });
/** @type {Map<number, Task>} */
const tasks = new Map();
/** @type {SpawnRequest[]} */
const queue = [];
/** @type {Array<{ header: Event, data: Buffer[] }>} */
let pending = [];
let flushScheduled = false;
let startScheduled = false;
let paused = false;

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => {});

/** @type {FrameReader<Request>} */
const reader = new FrameReader();
channel.on('data', (chunk) => reader.push(chunk, onRequest));
channel.on('end', shutdown);
channel.on('error', shutdown);
channel.on('drain', () => {
  if (!paused) return;
  paused = false;
  for (const task of tasks.values()) for (const stream of task.streams) stream.resume();
});

/** @param {Request} request */
function onRequest(request) {
  if (request.t === 'spawn') {
    queue.push(request);
    scheduleStart();
  } else if (request.t === 'withdraw') {
    const at = queue.findIndex((queued) => queued.id === request.id);
    if (at < 0) return; // forked already: the server terminates it instead
    queue.splice(at, 1);
    send({ t: 'withdrawn', id: request.id });
  } else if (request.t === 'release') {
    const task = tasks.get(request.id);
    tasks.delete(request.id);
    for (const stream of task?.streams ?? []) stream.destroy();
  }
}

/** One fork per event-loop turn: requests (a withdraw) and task output are read between two forks. */
function scheduleStart() {
  if (startScheduled || queue.length === 0) return;
  startScheduled = true;
  setImmediate(startNext);
}

function startNext() {
  startScheduled = false;
  const request = queue.shift();
  if (request) start(request);
  scheduleStart();
}

/** @param {SpawnRequest} request */
function start({ id, argv, cwd, env }) {
  let child;
  try {
    child = spawn(argv[0] ?? '', argv.slice(1), { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    const { code, message } = /** @type {NodeJS.ErrnoException} */ (error);
    return send({ t: 'error', id, code: code ?? 'EINVAL', message });
  }
  if (child.pid === undefined) {
    // ENOENT, EACCES, …: spawn() returned without a process and emits the error on the next tick (after
    // EMFILE/ENFILE there are not even pipes).
    child.stdout?.destroy();
    child.stderr?.destroy();
    child.once('error', (error) => send({ t: 'error', id, code: /** @type {NodeJS.ErrnoException} */ (error).code ?? 'UNKNOWN', message: error.message }));
    return;
  }
  const streams = [/** @type {import('node:stream').Readable} */ (child.stdout), /** @type {import('node:stream').Readable} */ (child.stderr)];
  /** @type {Task} */
  const task = { id, pid: child.pid, streams, open: 2, exited: false };
  tasks.set(id, task);
  send({ t: 'started', id, pid: child.pid });
  flush();
  child.on('error', () => {}); // nothing signals through `child`, so none is expected; never crash on one
  child.once('exit', (code, signal) => {
    task.exited = true;
    send({ t: 'exit', id, code, signal });
    if (task.open === 0) tasks.delete(id);
  });
  streams.forEach((stream, index) => {
    const name = index === 0 ? 'stdout' : 'stderr';
    stream.on('data', (/** @type {Buffer} */ chunk) => output(id, name, chunk));
    stream.on('error', () => {}); // a broken pipe is just the end of the output
    stream.once('close', () => {
      task.open -= 1;
      if (task.open > 0 || tasks.get(id) !== task) return; // released: the server wants nothing more
      send({ t: 'closed', id });
      if (task.exited) tasks.delete(id);
    });
    if (paused) stream.pause();
  });
}

/**
 * @param {number} id
 * @param {'stdout' | 'stderr'} stream
 * @param {Buffer} chunk
 */
function output(id, stream, chunk) {
  const last = pending[pending.length - 1];
  if (last && last.header.t === 'output' && last.header.id === id && last.header.stream === stream) last.data.push(chunk);
  else send({ t: 'output', id, stream }, chunk);
}

/**
 * @param {Event} header
 * @param {Buffer} [data]
 */
function send(header, data) {
  pending.push({ header, data: data ? [data] : [] });
  if (flushScheduled) return;
  flushScheduled = true;
  setImmediate(flush); // after this turn's I/O callbacks: what they read goes out in one write
}

function flush() {
  flushScheduled = false;
  const frames = pending;
  pending = [];
  if (frames.length === 0 || channel.destroyed) return;
  channel.cork(); // one writev for the whole batch
  for (const { header, data } of frames) channel.write(encodeFrame(header, data));
  channel.uncork();
  // uncork wrote what the socket took at once; what is left waits for the server to read. Past PAUSE_BYTES
  // a write has returned false, so 'drain' is due and resumes the pipes.
  if (!paused && channel.writableLength > PAUSE_BYTES) {
    paused = true;
    for (const task of tasks.values()) for (const stream of task.streams) stream.pause();
  }
}

function shutdown() {
  for (const task of tasks.values()) {
    if (task.exited) continue;
    try {
      process.kill(-task.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  process.exit(0);
}
