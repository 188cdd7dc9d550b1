/**
 * Job benchmarks (issue 3), each side by side in one run with BullMQ on a local Redis doing the same work
 * and with the floor (spawning the command directly):
 *   dispatch   — submit → user process start, 200 sequential jobs on a warm worker (p50, p99)
 *   throughput — a 10,000-task fan-out of `true`
 *   submit     — submits per second, single (autocannon) and batched (1,000 jobs per request)
 */
import { readFile, rm, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { call, makeAccount } from '../test/helpers/http.js';
import { pushFixture, waitJob } from '../test/helpers/jobs.js';
import { benchPgUrl, benchServer, percentile, record, table, withCpu } from './lib.js';
import { bull, bullHttp, directSpawns, run, startRedis, type Redis } from './peers.js';

const SLOTS = 8;
/**
 * The user process stamps its own start into a file: bench/stamp.c compiled with the system's `cc` (a C
 * program starts in a fraction of a millisecond, so the stamp is close to exec), else bash's
 * $EPOCHREALTIME (which adds bash's ~1.5 ms start-up to every row). The table says which was used.
 */
let STAMP: string[] = ['bash', '-c', 'echo "$EPOCHREALTIME" > "${COMPUTALOT_RESULT_PATH:-$BENCH_OUT}"'];
let stampKind = "bash's $EPOCHREALTIME";
async function compileStamp(): Promise<void> {
  const out = join(await mkdtemp(join(tmpdir(), 'bench-stamp-')), 'stamp');
  try {
    if ((await run(['cc', '-O2', '-o', out, new URL('./stamp.c', import.meta.url).pathname])) !== 0) return;
    STAMP = [out];
    stampKind = 'bench/stamp.c (a C program)';
  } catch {
    // no C compiler: keep the bash stamp
  }
}
const nowUs = () => (performance.timeOrigin + performance.now()) * 1000;
const stampUs = async (path: string) => Number.parseFloat(await readFile(path, 'utf8')) * 1e6;
const fmt = (ms: number) => ms.toFixed(2);

async function stores(): Promise<Array<[string, Record<string, string>]>> {
  const url = await benchPgUrl();
  return [['sqlite', {}], ...(url ? [['postgres', { DATABASE_URL: url }] as [string, Record<string, string>]] : [])];
}

async function computalotDispatch(env: Record<string, string>, n: number): Promise<number[]> {
  const { server } = await benchServer({ COMPUTALOT_LOCAL_WORKERS: '1', COMPUTALOT_WORKER_SLOTS: String(SLOTS), ...env });
  try {
    const acc = await makeAccount(server.url, 'bench');
    await pushFixture(server.url, acc.member, 'p');
    const lat: number[] = [];
    for (let i = -5; i < n; i += 1) {
      const t0 = nowUs();
      const res = await call(server.url, 'POST', '/api/v1/jobs', { token: acc.member, json: { project: 'p', runner_command: STAMP } });
      await waitJob(server.url, acc.member, res.body.id, undefined, 30_000);
      const r = await call(server.url, 'GET', `/api/v1/results/${res.body.id}`, { token: acc.member });
      // The result file holds the stamp; SPEC §7 parses it as JSON (a number).
      const t1 = Number(r.body.aggregate_result) * 1e6;
      if (i >= 0) lat.push((t1 - t0) / 1000);
    }
    return lat.sort((a, b) => a - b);
  } finally {
    await server.stop();
  }
}

async function bullDispatch(redis: Redis, n: number): Promise<number[]> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-bull-'));
  const b = await bull(redis, 'dispatch', SLOTS, STAMP);
  const waiting = new Map<string, () => void>();
  b.worker.on('completed', (job) => waiting.get(job.id ?? '')?.());
  try {
    const lat: number[] = [];
    for (let i = -5; i < n; i += 1) {
      const out = join(dir, `${i}.txt`);
      const t0 = nowUs();
      const job = await b.queue.add('t', { out });
      await new Promise<void>((resolve) => waiting.set(job.id ?? '', resolve));
      if (i >= 0) lat.push((await stampUs(out) - t0) / 1000);
    }
    return lat.sort((a, b) => a - b);
  } finally {
    await b.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** The same, with each job submitted over HTTP to BullMQ's front (bench/bull-http.ts): computalot's work. */
async function bullHttpDispatch(redis: Redis, n: number): Promise<number[]> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-bull-http-'));
  const b = await bull(redis, 'dispatch-http', SLOTS, STAMP);
  const front = await bullHttp(redis, 'dispatch-http');
  try {
    const lat: number[] = [];
    for (let i = -5; i < n; i += 1) {
      const out = join(dir, `${i}.txt`);
      const t0 = nowUs();
      const res = await fetch(front.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ out }) });
      await res.json();
      // What is measured is the stamp the process wrote; the poll only decides when the next job goes.
      await waitForFile(out);
      if (i >= 0) lat.push((await stampUs(out) - t0) / 1000);
    }
    return lat.sort((a, b) => a - b);
  } finally {
    await front.stop();
    await b.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function waitForFile(path: string): Promise<void> {
  for (let i = 0; i < 10_000; i += 1) {
    if ((await readFile(path, 'utf8').catch(() => '')).trim() !== '') return;
    await new Promise((r) => setTimeout(r, 1));
  }
}

async function floorDispatch(n: number): Promise<number[]> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-floor-'));
  const lat: number[] = [];
  for (let i = -5; i < n; i += 1) {
    const out = join(dir, `${i}.txt`);
    const t0 = nowUs();
    await run(STAMP, { ...process.env, BENCH_OUT: out });
    if (i >= 0) lat.push((await stampUs(out) - t0) / 1000);
  }
  await rm(dir, { recursive: true, force: true });
  return lat.sort((a, b) => a - b);
}

export async function dispatch(): Promise<void> {
  const n = 200;
  await compileStamp();
  const rows: Array<Array<string | number>> = [];
  for (const [name, env] of await stores()) {
    const lat = await computalotDispatch(env, n);
    rows.push([`computalot (${name}, HTTP submit)`, fmt(percentile(lat, 50)), fmt(percentile(lat, 99))]);
  }
  const redis = await startRedis();
  try {
    const lat = await bullDispatch(redis, n);
    rows.push(['BullMQ 6 + Redis (in-process add)', fmt(percentile(lat, 50)), fmt(percentile(lat, 99))]);
    const overHttp = await bullHttpDispatch(redis, n);
    rows.push(['BullMQ 6 + Redis behind HTTP (node:http → queue.add)', fmt(percentile(overHttp, 50)), fmt(percentile(overHttp, 99))]);
  } finally {
    redis.stop();
  }
  const floor = await floorDispatch(n);
  rows.push(['floor: spawn directly', fmt(percentile(floor, 50)), fmt(percentile(floor, 99))]);
  await record('dispatch: submit → user process start, 200 sequential jobs, warm worker', 'npm run bench -- dispatch', [
    table(['system', 'p50 ms', 'p99 ms'], rows),
    '',
    `The user process stamps its own start (stamp: ${stampKind}); the floor row is the same program spawned directly.`,
    'BullMQ behind HTTP: bench/bull-http.ts in its own process (no auth, no validation), the same work as computalot\'s row (an HTTP submit).',
    'Target (issue 3): computalot p50 ≤ 5 ms.',
  ].join('\n'));
}

export async function throughput(): Promise<void> {
  const count = 10_000;
  const rows: Array<Array<string | number>> = [];
  for (const [name, env] of await stores()) {
    const { server } = await benchServer({ COMPUTALOT_LOCAL_WORKERS: '1', COMPUTALOT_WORKER_SLOTS: String(SLOTS), ...env });
    try {
      const acc = await makeAccount(server.url, 'bench');
      await pushFixture(server.url, acc.member, 'p');
      const t0 = performance.now();
      const res = await call(server.url, 'POST', '/api/v1/jobs', { token: acc.member, json: { project: 'p', runner_command: ['true'], fan_out: { items: Array.from({ length: count }, (_, i) => i) } } });
      // Polled as a client would a 10 s job (4 times a second): each poll counts the job's 10,000 tasks
      // by status, which at 20 polls a second took ~5 % of PostgreSQL's time (pg_stat_statements).
      const done = await waitJob(server.url, acc.member, res.body.id, undefined, 600_000, 250);
      const ms = performance.now() - t0;
      rows.push([`computalot (${name})`, done.tasks.completed, (ms / 1000).toFixed(2), Math.round(count / (ms / 1000))]);
      // The same fan-out while another account has a task queued that no worker meets (a requirement
      // above the machine): the queue stays shared, so every lease takes the fair path
      // (docs/decisions.md, "Fair sharing").
      const other = await makeAccount(server.url, 'bench-other');
      await pushFixture(server.url, other.member, 'p');
      const blocker = await call(server.url, 'POST', '/api/v1/jobs', { token: other.member, json: { project: 'p', runner_command: ['true'], requirements: { memory_gb: 1_000_000 } } });
      const t1 = performance.now();
      const shared = await call(server.url, 'POST', '/api/v1/jobs', { token: acc.member, json: { project: 'p', runner_command: ['true'], fan_out: { items: Array.from({ length: count }, (_, i) => i) } } });
      const sharedDone = await waitJob(server.url, acc.member, shared.body.id, undefined, 600_000, 250);
      const sharedMs = performance.now() - t1;
      rows.push([`computalot (${name}), queue shared with another account`, sharedDone.tasks.completed, (sharedMs / 1000).toFixed(2), Math.round(count / (sharedMs / 1000))]);
      await call(server.url, 'POST', `/api/v1/jobs/${blocker.body.id}/cancel`, { token: other.member });
    } finally {
      await server.stop();
    }
  }
  const redis = await startRedis();
  try {
    let finished = 0;
    const b = await bull(redis, 'throughput', SLOTS, ['true']);
    const all = new Promise<void>((resolve) => b.worker.on('completed', () => { finished += 1; if (finished === count) resolve(); }));
    const t0 = performance.now();
    for (let i = 0; i < count; i += 1000) await b.queue.addBulk(Array.from({ length: 1000 }, (_, j) => ({ name: 't', data: { i: i + j } })));
    await all;
    const ms = performance.now() - t0;
    rows.push(['BullMQ 6 + Redis', finished, (ms / 1000).toFixed(2), Math.round(count / (ms / 1000))]);
    await b.close();
  } finally {
    redis.stop();
  }
  const floorMs = await directSpawns(['true'], count, SLOTS);
  rows.push(['floor: spawn directly', count, (floorMs / 1000).toFixed(2), Math.round(count / (floorMs / 1000))]);
  await record('throughput: a 10,000-task fan-out of `true`', 'npm run bench -- throughput', [
    table(['system', 'tasks completed', 'seconds', 'tasks/s'], rows),
    '',
    `${SLOTS} slots (COMPUTALOT_WORKER_SLOTS=${SLOTS}; BullMQ concurrency ${SLOTS}; the floor ${SLOTS} at a time), one embedded worker, process runtime; the client polls GET /jobs/:id every 250 ms (up to 0.25 s counted against computalot).`,
    '"Queue shared with another account": the same fan-out again, while a second account has one task queued that no worker meets (requirements.memory_gb 1,000,000), so that every lease goes the fair way (docs/decisions.md, "Fair sharing"); BullMQ has no such mode.',
    'Target (issue 3): ≥ 1,000 tasks/s.',
  ].join('\n'));
}

/** A row of the submit table: the rate, and the CPU the system spent per job (what bounds it on 2 cores). */
function submitRow(system: string, how: string, jobs: number, seconds: number, cpu: number, errors: number): Array<string | number> {
  return [system, how, Math.round(jobs / seconds), (cpu / seconds).toFixed(2), jobs > 0 ? Math.round((cpu / jobs) * 1e6) : '-', errors];
}

/** 10 s of back-to-back POSTs of `batch` (1,000 jobs each); the jobs created. */
async function batchedFor10s(url: string, headers: Record<string, string>, batch: string, created: (answer: unknown) => number) {
  const t0 = performance.now();
  let jobs = 0;
  while (performance.now() - t0 < 10_000) {
    const res = await fetch(url, { method: 'POST', headers, body: batch });
    jobs += created(await res.json());
  }
  return { jobs, seconds: (performance.now() - t0) / 1000 };
}

/** Single and batched submits to bench/bull-http.ts in front of `redis`, the rows of the submit table. */
async function behindHttpRows(system: string, redis: Redis): Promise<Array<Array<string | number>>> {
  const rows: Array<Array<string | number>> = [];
  const front = await bullHttp(redis, 'submit-http');
  // Behind HTTP: the front's process and redis-server (the load generator is not counted, as for computalot).
  const behindHttp = (_cmdline: string, pid: number) => pid === front.pid || pid === redis.pid;
  try {
    const headers = { 'content-type': 'application/json' };
    const single = await withCpu(behindHttp, () => autocannon({ url: front.url, method: 'POST', headers, body: JSON.stringify({ n: 1 }), connections: 10, duration: 10 }));
    rows.push(submitRow(system, 'single POST, 10 connections', single.value['2xx'], single.value.duration, single.cpu, single.value.non2xx + single.value.errors));
    const batch = JSON.stringify({ jobs: Array.from({ length: 1000 }, () => ({ n: 1 })) });
    const viaHttp = await withCpu(behindHttp, () => batchedFor10s(`${front.url}/bulk`, headers, batch, (answer) => (answer as { ids: unknown[] }).ids.length));
    rows.push(submitRow(system, 'POST /bulk, 1,000 per request', viaHttp.value.jobs, viaHttp.value.seconds, viaHttp.cpu, 0));
  } finally {
    await front.stop();
  }
  return rows;
}

export async function submit(): Promise<void> {
  const rows: Array<Array<string | number>> = [];
  const body = JSON.stringify({ project: 'p', runner_command: ['true'], payload: { n: 1 } });
  for (const [name, env] of await stores()) {
    const { server } = await benchServer({ COMPUTALOT_LOCAL_WORKERS: '0', ...env });
    // The server process and, on PostgreSQL, the benchmark database's backends.
    const system = (cmdline: string, pid: number) => pid === server.child.pid || cmdline.includes('computalot_bench');
    try {
      const acc = await makeAccount(server.url, 'bench');
      await pushFixture(server.url, acc.member, 'p');
      const headers = { authorization: `Bearer ${acc.member}`, 'content-type': 'application/json' };
      const single = await withCpu(system, () => autocannon({ url: `${server.url}/api/v1/jobs`, method: 'POST', headers, body, connections: 10, duration: 10 }));
      rows.push(submitRow(`computalot (${name})`, 'single POST /jobs, 10 connections', single.value['2xx'], single.value.duration, single.cpu, single.value.non2xx + single.value.errors));
      const batch = JSON.stringify({ jobs: Array.from({ length: 1000 }, () => JSON.parse(body)) });
      const batched = await withCpu(system, () => batchedFor10s(`${server.url}/api/v1/jobs/batch`, headers, batch,
        (answer) => (answer as { jobs: Array<{ id?: string }> }).jobs.filter((j) => j.id).length));
      rows.push(submitRow(`computalot (${name})`, 'POST /jobs/batch, 1,000 per request', batched.value.jobs, batched.value.seconds, batched.cpu, 0));
    } finally {
      await server.stop();
    }
  }
  const redis = await startRedis();
  try {
    const b = await bull(redis, 'submit', 1, ['true']);
    await b.worker.pause();
    // In process: this process (the client) and redis-server.
    const inProcess = (_cmdline: string, pid: number) => pid === process.pid || pid === redis.pid;
    const adds = await withCpu(inProcess, async () => {
      let added = 0;
      const t0 = performance.now();
      await Promise.all(Array.from({ length: 10 }, async () => {
        while (performance.now() - t0 < 10_000) { await b.queue.add('t', { n: 1 }); added += 1; }
      }));
      return { jobs: added, seconds: (performance.now() - t0) / 1000 };
    });
    rows.push(submitRow('BullMQ 6 + Redis', 'queue.add, 10 concurrent', adds.value.jobs, adds.value.seconds, adds.cpu, 0));
    const bulks = await withCpu(inProcess, async () => {
      let bulk = 0;
      const t1 = performance.now();
      while (performance.now() - t1 < 10_000) {
        await b.queue.addBulk(Array.from({ length: 1000 }, () => ({ name: 't', data: { n: 1 } })));
        bulk += 1000;
      }
      return { jobs: bulk, seconds: (performance.now() - t1) / 1000 };
    });
    rows.push(submitRow('BullMQ 6 + Redis', 'queue.addBulk, 1,000 per call', bulks.value.jobs, bulks.value.seconds, bulks.cpu, 0));
    await b.close();
    rows.push(...await behindHttpRows('BullMQ 6 + Redis behind HTTP', redis));
  } finally {
    redis.stop();
  }
  // The same front on a Redis that keeps what it accepted (AOF, fsync every second: BullMQ's advice).
  const aofDir = await mkdtemp(join(tmpdir(), 'bench-redis-aof-'));
  const durable = await startRedis(6394, aofDir);
  try {
    rows.push(...await behindHttpRows('BullMQ 6 + Redis (AOF everysec) behind HTTP', durable));
  } finally {
    durable.stop();
    await rm(aofDir, { recursive: true, force: true });
  }
  await record('submits per second', 'npm run bench -- submit', [
    table(['system', 'how', 'jobs/s', 'cores busy', 'CPU µs per job', 'errors'], rows),
    '',
    'computalot: HTTP with bearer auth, each job validated, planned and committed with its job.created event (SQLite: WAL, synchronous=NORMAL, safe from a process crash; PostgreSQL: synchronous_commit on; docs/decisions.md); no worker running.',
    'BullMQ: in-process client calls to Redis (no HTTP, no auth, in memory); "behind HTTP": bench/bull-http.ts in its own process (node:http, no auth, no validation), the same work as computalot\'s rows. "AOF everysec": Redis with an append-only file fsynced every second, as BullMQ\'s production guide recommends, so that accepted jobs survive a crash of Redis, as computalot\'s do; the other Redis rows keep jobs in memory only.',
    'Cores busy and CPU per job (/proc, user + system): computalot\'s server process, plus its PostgreSQL backends on PostgreSQL; BullMQ\'s client process (in-process rows) or its HTTP front (behind HTTP), plus redis-server. The load generator (autocannon, fetch) is not counted for either.',
    'Targets (issue 3): ≥ 3,000/s single, ≥ 20,000 jobs/s batched.',
  ].join('\n'));
}

export async function main(args: string[]): Promise<void> {
  const which = args[0];
  if (which === 'dispatch') return dispatch();
  if (which === 'throughput') return throughput();
  return submit();
}
