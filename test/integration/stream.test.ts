/**
 * Project streams (SPEC §10): a client that loses its connection and comes back with Last-Event-ID sees
 * every event exactly once and in order, whoever cut the connection; `?since=` replays; heartbeats keep
 * the connection open; a resume point older than the pruned log gets `stream.reset`; other accounts get 404.
 *
 * Streams are read with the `eventsource` package (a real client that reconnects by itself and sends
 * Last-Event-ID), or with fetch when the raw bytes matter. The server side of a connection is cut by
 * destroying its socket, found through the `http.server.request.start` diagnostics channel. The ground
 * truth for "every event" is the project's event log, read from the store.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import diagnostics from 'node:diagnostics_channel';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { get as httpGet } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EventSource } from 'eventsource';
import { nowIso } from '../../src/core/clock.js';
import { loadConfig } from '../../src/config.js';
import { startServer } from '../../src/server.js';
import type { Store } from '../../src/store/port.js';
import { storeKind, testDatabase } from '../helpers/db.js';
import { call, makeAccount, type TestAccount } from '../helpers/http.js';
import { pushFixture, submit } from '../helpers/jobs.js';
import { ADMIN_TOKEN, startTestServer, type TestServer } from '../helpers/server.js';
import { follow, onRequestStart, readRaw, sleep, sockets, waitFor, type Seen } from '../helpers/stream-client.js';

const HEARTBEAT_MS = 200;

async function makeTarball(n: number): Promise<Buffer> {
  const dir = await mkdtemp(join(tmpdir(), 'computalot-tarball-'));
  try {
    await writeFile(join(dir, 'Dockerfile'), 'FROM python:3.12-slim\nCOPY . /workspace\n');
    await writeFile(join(dir, 'computalot.project.json'), JSON.stringify({
      version: 1, runtime: { kind: 'oci', sandbox: 'gvisor', workdir: '/workspace' }, entrypoint: { command: ['python3', 'script.py'] },
    }));
    await writeFile(join(dir, 'script.py'), `print("revision ${n}")\n`);
    execFileSync('tar', ['czf', join(dir, 'code.tar.gz'), '-C', dir, 'Dockerfile', 'computalot.project.json', 'script.py']);
    return await readFile(join(dir, 'code.tar.gz'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * A project's whole event log. Every write of the test has committed; first wait until the log's readable
 * part (its high-water mark on PostgreSQL) has caught up with them and stays put.
 */
async function settledEvents(store: Store, projectId: string) {
  let mark = await store.latestEventId();
  for (;;) {
    await sleep(50);
    const again = await store.latestEventId();
    if (again === mark) break;
    mark = again;
  }
  return store.readEvents({ projectId }, 0, 100_000);
}

describe(`project streams (${storeKind()})`, { timeout: 240_000 }, () => {
  let server: TestServer;
  let acct: TestAccount;
  let pushes = 0;

  const createProject = async (name: string, s: TestServer = server, a: TestAccount = acct) => {
    const res = await call(s.url, 'POST', '/api/v1/projects', { token: a.member, json: { name } });
    assert.equal(res.status, 201, res.text);
  };
  const putKv = async (project: string, key: string, value: unknown, s: TestServer = server, a: TestAccount = acct) => {
    const res = await call(s.url, 'PUT', `/api/v1/projects/${project}/kv/${encodeURIComponent(key)}`, { token: a.member, json: value });
    assert.equal(res.status, 200, res.text);
    return res.body as { key: string; version: number };
  };
  const delKv = async (project: string, key: string) => {
    const res = await call(server.url, 'DELETE', `/api/v1/projects/${project}/kv/${encodeURIComponent(key)}`, { token: acct.member });
    assert.equal(res.status, 204, res.text);
  };
  const push = async (project: string) => {
    const res = await call(server.url, 'POST', `/api/v1/projects/${project}/push`, { token: acct.member, body: await makeTarball((pushes += 1)) });
    assert.equal(res.status, 201, res.text);
  };
  /** The project's whole event log, from the store: what a client that misses nothing must have seen. */
  const log = async (project: string, s: TestServer = server, a: TestAccount = acct) => {
    const store = s.server.deps.store;
    const p = await store.getProject(a.id, project);
    assert.ok(p);
    return settledEvents(store, p.id);
  };
  const streamPath = (project: string, query = '') => `/api/v1/projects/${project}/stream${query}`;

  /** Seen events must be exactly the log's events after `afterId`: same ids, types and data, once each, in order. */
  const assertExactlyOnce = (seen: Seen[], truth: Awaited<ReturnType<typeof log>>, afterId = 0) => {
    const expected = truth.filter((e) => e.id > afterId);
    const ids = seen.map((e) => e.id);
    assert.equal(new Set(ids).size, ids.length, `duplicate ids: ${ids.join(',')}`);
    assert.deepEqual(ids, expected.map((e) => e.id), 'every event once, in order');
    assert.deepEqual(seen.map((e) => e.type), expected.map((e) => e.type));
    for (const [i, e] of expected.entries()) {
      assert.deepEqual(seen[i]!.data, { ...e.data, created_at: e.created_at }, `data of event ${e.id}`);
    }
  };

  before(async () => {
    diagnostics.subscribe('http.server.request.start', onRequestStart);
    server = await startTestServer({ COMPUTALOT_SSE_HEARTBEAT_MS: String(HEARTBEAT_MS) });
    acct = await makeAccount(server.url, 'streamer');
  });

  after(async () => {
    await server?.stop();
    diagnostics.unsubscribe('http.server.request.start', onRequestStart);
  });

  it('the server cuts the connection mid-burst; the client reconnects with Last-Event-ID and sees every event once, in order', async () => {
    const P = 'cut-by-server';
    await createProject(P);
    await push(P);
    const stream = follow(server.url, streamPath(P, '?since=0'), acct.viewer);
    try {
      await stream.opened();
      let cutAfter = 0;
      for (let i = 0; i < 40; i += 1) {
        await putKv(P, `k${i}`, { i });
        if (i === 12) {
          // The client is mid-way through the burst: cut it from the server side, and keep it away.
          await waitFor('some of the burst', () => (stream.seen.some((e) => e.data.key === 'k8') ? true : undefined));
          stream.hold();
          stream.cut();
          await waitFor('the reconnect attempt', () => (stream.attempts.length >= 2 ? true : undefined));
          cutAfter = stream.seen.at(-1)!.id;
        }
        if (i === 20 || i === 30) await push(P);
        if (i === 25) await delKv(P, 'k3');
      }
      stream.release();
      const truth = await log(P);
      await waitFor('every event', () => (stream.seen.length >= truth.length ? true : undefined));
      await sleep(300); // any duplicate would arrive right behind
      assertExactlyOnce(stream.seen, truth);
      assert.ok(cutAfter > 0 && truth.some((e) => e.id > cutAfter), 'events were made while the client was away');
      assert.ok(stream.seen.findIndex((e) => e.id === cutAfter) < stream.seen.length - 20, 'the cut came mid-way');
      const reconnect = stream.attempts[1]!;
      assert.equal(reconnect.lastEventId, String(reconnect.lastSeenId), 'the reconnect resumed from the last id seen');
      assert.ok(stream.opens() >= 2);
    } finally {
      stream.close();
    }
  });

  it('the server cuts the connection three times in a row; nothing is lost or repeated', async () => {
    const P = 'cut-repeatedly';
    await createProject(P);
    const stream = follow(server.url, streamPath(P), acct.viewer);
    try {
      await stream.opened();
      for (let round = 0; round < 3; round += 1) {
        for (let i = 0; i < 5; i += 1) await putKv(P, `r${round}-${i}`, i);
        await waitFor(`round ${round} seen`, () => (stream.seen.some((e) => e.data.key === `r${round}-4`) ? true : undefined));
        stream.hold();
        stream.cut();
        await waitFor('the reconnect attempt', () => (stream.attempts.length >= round + 2 ? true : undefined));
        for (let i = 0; i < 5; i += 1) await putKv(P, `away${round}-${i}`, i);
        stream.release();
        await stream.opened(round + 2);
      }
      const truth = await log(P);
      await waitFor('every event', () => (stream.seen.length >= truth.length ? true : undefined));
      await sleep(300);
      assertExactlyOnce(stream.seen, truth);
      for (const attempt of stream.attempts.slice(1)) assert.equal(attempt.lastEventId, String(attempt.lastSeenId));
    } finally {
      stream.close();
    }
  });

  it('a client that closes and opens a new stream with Last-Event-ID misses nothing', async () => {
    const P = 'client-reopens';
    await createProject(P);
    const first = follow(server.url, streamPath(P), acct.viewer);
    await first.opened();
    for (let i = 0; i < 5; i += 1) await putKv(P, `before-${i}`, i);
    await waitFor('the first five', () => (first.seen.length >= 5 ? true : undefined));
    first.close();
    const lastId = first.seen.at(-1)!.id;
    // while no stream is open
    for (let i = 0; i < 5; i += 1) await putKv(P, `between-${i}`, i);
    await push(P);
    await delKv(P, 'before-0');
    const second = follow(server.url, streamPath(P), acct.viewer, { lastEventId: String(lastId) });
    try {
      await second.opened();
      for (let i = 0; i < 3; i += 1) await putKv(P, `after-${i}`, i);
      const truth = await log(P);
      await waitFor('the rest', () => (first.seen.length + second.seen.length >= truth.length ? true : undefined));
      await sleep(300);
      assertExactlyOnce([...first.seen, ...second.seen], truth);
      assert.equal(second.attempts[0]!.lastEventId, String(lastId));
    } finally {
      second.close();
    }
  });

  it('?since= replays the events after it; on reconnect Last-Event-ID wins over ?since=', async () => {
    const P = 'since-replay';
    await createProject(P);
    for (let i = 0; i < 6; i += 1) await putKv(P, `s${i}`, i);
    const truth = await log(P);
    const since = truth[2]!.id;

    const all = follow(server.url, streamPath(P, '?since=0'), acct.viewer);
    const tail = follow(server.url, streamPath(P, `?since=${since}`), acct.viewer);
    try {
      await waitFor('the full replay', () => (all.seen.length >= truth.length ? true : undefined));
      await waitFor('the tail replay', () => (tail.seen.length >= truth.length - 3 ? true : undefined));
      assertExactlyOnce(all.seen, truth);
      assertExactlyOnce(tail.seen, truth, since);

      // The client reconnects to the same URL (?since= still in it) with a newer Last-Event-ID.
      tail.hold();
      tail.cut();
      await waitFor('the reconnect attempt', () => (tail.attempts.length >= 2 ? true : undefined));
      await putKv(P, 'while-away', true);
      tail.release();
      await tail.opened(2);
      await putKv(P, 'after-reconnect', true);
      const now = await log(P);
      await waitFor('the tail to catch up', () => (tail.seen.length >= now.length - 3 ? true : undefined));
      await sleep(300);
      assertExactlyOnce(tail.seen, now, since);
    } finally {
      all.close();
      tail.close();
    }
  });

  it('a stream without a resume point starts now; other projects\' events are not on it', async () => {
    const P = 'live-only';
    const Q = 'live-only-neighbour';
    await createProject(P);
    await createProject(Q);
    await putKv(P, 'old', 1);
    const stream = follow(server.url, streamPath(P), acct.viewer);
    try {
      await stream.opened();
      await putKv(Q, 'neighbour', 1);
      await putKv(P, 'new', 1);
      await waitFor('the new event', () => (stream.seen.some((e) => e.data.key === 'new') ? true : undefined));
      await sleep(300);
      assert.deepEqual(stream.seen.map((e) => [e.type, e.data.project, e.data.key]), [['kv.updated', P, 'new']]);
    } finally {
      stream.close();
    }
  });

  it('frames carry id, event and JSON data; heartbeat comments arrive while idle', async () => {
    const P = 'raw-frames';
    await createProject(P);
    await putKv(P, 'framed', { hello: 'world' });
    const [event] = await log(P);
    assert.ok(event);
    const res = await readRaw(server.url + streamPath(P, '?since=0'), { authorization: `Bearer ${acct.viewer}` },
      (text) => (text.match(/^: keepalive$/gm) ?? []).length >= 3);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    assert.match(res.headers.get('cache-control') ?? '', /no-cache/);
    assert.ok(res.text.includes(`id: ${event.id}\nevent: kv.updated\ndata: `), res.text);
    const dataLine = res.text.split('\n').find((line) => line.startsWith('data: '))!;
    const data = JSON.parse(dataLine.slice('data: '.length));
    assert.equal(data.key, 'framed');
    assert.equal(data.project, P);
    assert.ok((res.text.match(/^: keepalive$/gm) ?? []).length >= 3, 'heartbeat comment lines');
  });

  it("another account's stream → 404 project_not_found, exactly like an absent project", async () => {
    const P = 'private-stream';
    await createProject(P);
    const other = await makeAccount(server.url, 'stream-other');
    const theirs = await readRaw(server.url + streamPath(P), { authorization: `Bearer ${other.member}` }, () => true);
    const absent = await readRaw(server.url + streamPath('absent-stream'), { authorization: `Bearer ${other.member}` }, () => true);
    for (const res of [theirs, absent]) {
      assert.equal(res.status, 404);
      const body = JSON.parse(res.text);
      assert.deepEqual(Object.keys(body.error).sort(), ['code', 'details', 'message']);
      assert.equal(body.error.code, 'project_not_found');
    }
    assert.equal(theirs.text.replace(P, '<name>'), absent.text.replace('absent-stream', '<name>'));
    // the eventsource client gives up on a 404 instead of retrying
    const stream = follow(server.url, streamPath(P), other.viewer);
    try {
      await waitFor('the error', () => (stream.errors.length > 0 ? true : undefined));
      assert.equal(stream.errors[0]!.code, 404);
      assert.equal(stream.source.readyState, EventSource.CLOSED);
    } finally {
      stream.close();
    }
    const noToken = await readRaw(server.url + streamPath(P), {}, () => true);
    assert.equal(noToken.status, 401);
    assert.equal(JSON.parse(noToken.text).error.code, 'unauthorized');
  });

  it('a stream whose client leaves while it is opening is closed, not leaked', async () => {
    const P = 'impatient';
    await createProject(P);
    const gauge = async () => {
      const metrics = await call(server.url, 'GET', '/metrics', { token: null });
      return Number(/^computalot_sse_clients (\S+)$/m.exec(metrics.text)?.[1] ?? NaN);
    };
    const baseline = await waitFor('no open streams', async () => ((await gauge()) === 0 ? 0 : undefined));
    // Hold the server inside the stream's opening (its first read of the log) until the client has gone.
    const store = server.server.deps.store;
    const original = store.eventsPrunedThrough;
    let entered!: () => void;
    let release!: () => void;
    const inside = new Promise<void>((resolve) => { entered = resolve; });
    const gate = new Promise<void>((resolve) => { release = resolve; });
    store.eventsPrunedThrough = async () => {
      entered();
      await gate;
      return original.call(store);
    };
    try {
      const tag = 'impatient-client';
      const req = httpGet(server.url + streamPath(P), { agent: false, headers: { authorization: `Bearer ${acct.viewer}`, 'x-test-stream': tag } });
      req.on('error', () => undefined);
      await inside;
      const serverSocket = sockets.get(tag);
      assert.ok(serverSocket);
      const serverSawClose = new Promise((resolve) => serverSocket.once('close', resolve));
      req.destroy();
      await serverSawClose;
    } finally {
      release();
      store.eventsPrunedThrough = original;
    }
    // The client is gone: the server must end the stream it went on to open for it.
    await waitFor('the open-streams gauge to return to its baseline', async () => ((await gauge()) === baseline ? true : undefined), 10_000);
  });

  it('a bad ?since= → 400 invalid_request', async () => {
    await createProject('bad-since');
    for (const since of ['-1', 'yesterday', '1.5']) {
      const res = await call(server.url, 'GET', streamPath('bad-since', `?since=${since}`), { token: acct.viewer });
      assert.equal(res.status, 400, res.text);
      assert.equal(res.body.error.code, 'invalid_request');
    }
  });

  describe('shutdown', () => {
    it('stop() ends open streams (the client sees the end) and returns even while a client holds a silent connection', async () => {
      const doomed = await startTestServer();
      const silent: Socket[] = [];
      let stream: ReturnType<typeof follow> | null = null;
      let stopped: Promise<void> | null = null;
      try {
        const a = await makeAccount(doomed.url, 'shutdown');
        await createProject('ending', doomed, a);
        stream = follow(doomed.url, streamPath('ending'), a.viewer);
        await stream.opened();
        const { hostname, port } = new URL(doomed.url);
        // A client that connected and has not sent its request yet (or never will).
        for (const partial of ['', 'GET /health HTTP/1.1\r\nHost: x\r\n']) {
          const socket = connect(Number(port), hostname);
          socket.on('error', () => undefined);
          await new Promise((resolve) => socket.once('connect', resolve));
          if (partial) socket.write(partial);
          silent.push(socket);
        }
        stream.hold(); // the client's reconnect would only find the server gone
        stopped = doomed.stop();
        await waitFor('the stream to see its end', () => (stream!.attempts.length >= 2 ? true : undefined));
        // A connection that never sends a whole request counts as active, so closeIdleConnections() leaves it
        // and server.close() stops the header timeouts that would end it: stop() must end it after its grace.
        const outcome = await Promise.race([stopped.then(() => 'stopped'), sleep(15_000).then(() => 'still waiting')]);
        assert.equal(outcome, 'stopped', 'stop() did not return within 15 s while a client held a silent connection');
      } finally {
        stream?.close();
        for (const socket of silent) socket.destroy();
        await (stopped ?? doomed.stop());
      }
    });
  });

  describe('pruned history', () => {
    it('with COMPUTALOT_EVENT_RETENTION_S=1, housekeeping prunes the log and an old Last-Event-ID gets stream.reset', async () => {
      const short = await startTestServer({ COMPUTALOT_EVENT_RETENTION_S: '1' });
      const stream: Array<ReturnType<typeof follow>> = [];
      try {
        const a = await makeAccount(short.url, 'short-memory');
        await createProject('forgetful', short, a);
        await putKv('forgetful', 'a', 1, short, a);
        await putKv('forgetful', 'b', 2, short, a);
        const [first, second] = await log('forgetful', short, a);
        assert.ok(first && second);
        const store = short.server.deps.store;
        const pruned = await waitFor('housekeeping to prune', async () => {
          const through = await store.eventsPrunedThrough();
          return through >= second.id ? through : undefined;
        });
        const s = follow(short.url, streamPath('forgetful'), a.viewer, { lastEventId: String(first.id) });
        stream.push(s);
        const reset = await waitFor('stream.reset', () => s.seen[0]);
        assert.equal(reset.type, 'stream.reset');
        assert.equal(reset.data.reason, 'events_pruned');
        assert.equal(reset.data.requested_since, first.id);
        assert.ok(reset.data.oldest_available > first.id);
        assert.ok(reset.data.oldest_available <= pruned + 1);
        assert.equal(typeof reset.data.message, 'string');
        // the stream goes on after the reset
        await putKv('forgetful', 'c', 3, short, a);
        const next = await waitFor('the next event', () => s.seen[1]);
        assert.equal(next.type, 'kv.updated');
        assert.equal(next.data.key, 'c');
        assert.ok(next.id > reset.id);
      } finally {
        for (const s of stream) s.close();
        await short.stop();
      }
    });

    it('after the whole log is pruned: stream.reset carries an id that does not reset again', async () => {
      const P = 'all-pruned';
      const store = server.server.deps.store;
      await createProject(P);
      await putKv(P, 'a', 1);
      await putKv(P, 'b', 2);
      const [first, second] = await log(P);
      assert.ok(first && second);
      // everything in the log is older than a minute from now: prune it all (what retention does to an idle server)
      await store.pruneEvents(nowIso(Date.now() + 60_000));
      const through = await store.eventsPrunedThrough();
      assert.ok(through >= second.id);

      const s1 = follow(server.url, streamPath(P), acct.viewer, { lastEventId: String(first.id) });
      let s2: ReturnType<typeof follow> | null = null;
      try {
        const reset = await waitFor('stream.reset', () => s1.seen[0]);
        assert.equal(reset.type, 'stream.reset');
        // The reset's id becomes the client's Last-Event-ID: resuming from it must not reset again.
        assert.ok(reset.id >= through, `stream.reset id ${reset.id} is below the pruned id ${through}, so resuming from it resets again`);
        s1.close();
        s2 = follow(server.url, streamPath(P), acct.viewer, { lastEventId: String(reset.id) });
        await s2.opened();
        await putKv(P, 'c', 3);
        const next = await waitFor('the next event', () => s2!.seen[0]);
        assert.equal(next.type, 'kv.updated', `expected kv.updated, got ${next.type}`);
        assert.equal(next.data.key, 'c');
      } finally {
        s1.close();
        s2?.close();
      }
    });

    it('a job stream whose job.created was pruned starts with stream.reset, not a replay from the middle, and ends', async () => {
      const store = server.server.deps.store;
      await pushFixture(server.url, acct.member, 'pruned-job');
      const job = await submit(server.url, acct.member, { project: 'pruned-job', runner_command: ['true'] });
      assert.equal((await call(server.url, 'POST', `/api/v1/jobs/${job.id}/cancel`, { token: acct.member })).status, 200);
      await store.pruneEvents(nowIso(Date.now() + 60_000));
      const auth = { authorization: `Bearer ${acct.member}` };
      const started = Date.now();
      const { text } = await readRaw(`${server.url}/api/v1/jobs/${job.id}/stream`, auth, () => false, 10_000);
      assert.match(text, /event: stream\.reset\ndata: \{"reason":"events_pruned","requested_since":0,/);
      assert.ok(Date.now() - started < 9_000, 'the stream of a finished job ends after the reset');
    });

    it('after a restart with the whole log pruned, stream.reset still carries an id that does not reset again', async () => {
      const dataDir = await mkdtemp(join(tmpdir(), 'computalot-restart-'));
      const db = await testDatabase();
      const env = {
        PORT: '0', COMPUTALOT_DATA_DIR: dataDir, COMPUTALOT_ADMIN_TOKEN: ADMIN_TOKEN, COMPUTALOT_RUNTIME: 'process',
        COMPUTALOT_LOCAL_WORKERS: '0', ...(db.url ? { DATABASE_URL: db.url } : {}),
      };
      let running = await startServer(loadConfig(env), { logger: false });
      const streams: Array<ReturnType<typeof follow>> = [];
      try {
        const a = await makeAccount(running.url, 'restarter');
        const res = await call(running.url, 'POST', '/api/v1/projects', { token: a.member, json: { name: 'restarted' } });
        assert.equal(res.status, 201, res.text);
        for (const key of ['a', 'b']) {
          assert.equal((await call(running.url, 'PUT', `/api/v1/projects/restarted/kv/${key}`, { token: a.member, json: 1 })).status, 200);
        }
        const project = await running.deps.store.getProject(a.id, 'restarted');
        const [first] = await settledEvents(running.deps.store, project!.id);
        assert.ok(first);
        await running.deps.store.pruneEvents(nowIso(Date.now() + 60_000));
        const through = await running.deps.store.eventsPrunedThrough();
        await running.stop();
        running = await startServer(loadConfig(env), { logger: false });

        const s1 = follow(running.url, streamPath('restarted'), a.viewer, { lastEventId: String(first!.id) });
        streams.push(s1);
        const reset = await waitFor('stream.reset', () => s1.seen[0]);
        assert.equal(reset.type, 'stream.reset');
        assert.ok(reset.id >= through, `stream.reset id ${reset.id} is below the pruned id ${through}, so resuming from it resets again`);
        s1.close();
        const s2 = follow(running.url, streamPath('restarted'), a.viewer, { lastEventId: String(reset.id) });
        streams.push(s2);
        await s2.opened();
        assert.equal((await call(running.url, 'PUT', '/api/v1/projects/restarted/kv/c', { token: a.member, json: 1 })).status, 200);
        const next = await waitFor('the next event', () => s2.seen[0]);
        assert.equal(next.type, 'kv.updated', `expected kv.updated, got ${next.type}`);
        assert.equal(next.data.key, 'c');
      } finally {
        for (const s of streams) s.close();
        await running.stop();
        await db.drop();
        await rm(dataDir, { recursive: true, force: true });
      }
    });

    it('Last-Event-ID exactly at the pruned id is not a gap: no reset', async () => {
      const P = 'edge-pruned';
      const store = server.server.deps.store;
      await createProject(P);
      await putKv(P, 'x', 1);
      await store.pruneEvents(nowIso(Date.now() + 60_000));
      const through = await store.eventsPrunedThrough();
      const s = follow(server.url, streamPath(P), acct.viewer, { lastEventId: String(through) });
      try {
        await s.opened();
        await putKv(P, 'y', 2);
        const next = await waitFor('the next event', () => s.seen[0]);
        assert.equal(next.type, 'kv.updated');
        assert.equal(next.data.key, 'y');
      } finally {
        s.close();
      }
    });

    it('?since= older than the pruned log also gets stream.reset', async () => {
      const P = 'since-pruned';
      const store = server.server.deps.store;
      await createProject(P);
      await putKv(P, 'x', 1);
      const [event] = await log(P);
      await store.pruneEvents(nowIso(Date.now() + 60_000));
      const res = await readRaw(server.url + streamPath(P, `?since=${event!.id - 1}`), { authorization: `Bearer ${acct.viewer}` },
        (text) => text.includes('event: stream.reset'));
      assert.match(res.text, /event: stream\.reset\ndata: /);
    });
  });
});
