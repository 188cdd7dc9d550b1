/**
 * A client for project streams in tests: `follow` (the `eventsource` package, a real client that
 * reconnects by itself with Last-Event-ID; `hold`/`release` gate its reconnects, `cut` destroys the server
 * side of its connection), `readRaw` (raw bytes with fetch) and `waitFor`. Server sockets are found through
 * the `http.server.request.start` diagnostics channel: subscribe `onRequestStart` while a test runs.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { EventSource } from 'eventsource';

export const WAIT_MS = 30_000;
export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function waitFor<T>(what: string, check: () => Promise<T | undefined> | T | undefined, ms = WAIT_MS): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

const EVENT_TYPES = [
  'project.pushed', 'project.readiness', 'job.created', 'job.status', 'task.status', 'task.progress', 'task.output',
  'job.completed', 'kv.updated', 'kv.deleted', 'stream.reset',
];

export interface Seen { id: number; type: string; data: Record<string, any> }

/** Server-side sockets of open stream requests, by the x-test-stream tag the client sent. */
export const sockets = new Map<string, Socket>();
export const onRequestStart = (message: unknown) => {
  const { request, socket } = message as { request: IncomingMessage; socket: Socket };
  const tag = request.headers['x-test-stream'];
  if (typeof tag === 'string') sockets.set(tag, socket);
};

let streamCount = 0;

/**
 * A project stream followed by `eventsource`. `hold()` makes the next reconnect wait until `release()`,
 * so the test decides what happens while the client is away. Every connection attempt is recorded with
 * the Last-Event-ID it sent and the last id the client had seen when it asked.
 */
export function follow(base: string, path: string, token: string, opts: { lastEventId?: string } = {}) {
  const tag = `stream-${(streamCount += 1)}`;
  const seen: Seen[] = [];
  const attempts: Array<{ lastEventId: string | null; lastSeenId: number | null }> = [];
  let gate: { promise: Promise<void>; open: () => void } | null = null;
  const source = new EventSource(base + path, {
    fetch: async (input, init) => {
      const headers: Record<string, string> = { ...init.headers, Authorization: `Bearer ${token}`, 'x-test-stream': tag };
      if (attempts.length === 0 && opts.lastEventId !== undefined) headers['Last-Event-ID'] = opts.lastEventId;
      attempts.push({ lastEventId: headers['Last-Event-ID'] ?? null, lastSeenId: seen.at(-1)?.id ?? null });
      if (gate) await gate.promise;
      return fetch(input, { ...init, headers });
    },
  });
  for (const type of EVENT_TYPES) {
    source.addEventListener(type, (e) => seen.push({ id: Number(e.lastEventId), type, data: JSON.parse(e.data) }));
  }
  let opens = 0;
  source.addEventListener('open', () => { opens += 1; });
  const errors: Array<{ code: number | undefined; message: string | undefined }> = [];
  source.addEventListener('error', (e) => errors.push({ code: e.code, message: e.message }));
  return {
    seen, attempts, errors, source,
    opens: () => opens,
    opened: (n = 1) => waitFor(`stream ${tag} to open (${n})`, () => (opens >= n ? true : undefined)),
    /** Destroys the server side of the current connection. */
    cut: () => {
      const socket = sockets.get(tag);
      assert.ok(socket, `no server socket recorded for ${tag}`);
      socket.destroy();
    },
    hold: () => {
      let open!: () => void;
      const promise = new Promise<void>((resolve) => { open = resolve; });
      gate = { promise, open };
    },
    release: () => {
      gate?.open();
      gate = null;
    },
    close: () => source.close(),
  };
}

/** Reads a stream's raw bytes with fetch until `done(text)` or the time bound; then aborts. */
export async function readRaw(url: string, headers: Record<string, string>, done: (text: string) => boolean, ms = WAIT_MS) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), ms);
  const res = await fetch(url, { headers, signal: abort.signal });
  let text = '';
  try {
    if (res.body) {
      const decoder = new TextDecoder();
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        text += decoder.decode(chunk, { stream: true });
        if (done(text)) break;
      }
    }
  } catch (err) {
    if ((err as Error).name !== 'AbortError') throw err;
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
  return { status: res.status, headers: res.headers, text };
}
