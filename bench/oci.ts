/**
 * The sandboxed runtime's benchmarks (issue 4), each side by side with doing the same by hand with podman:
 *
 *   cold — push → first result of examples/hello-python (a fresh revision each run: a new file defeats
 *          the COPY layer cache on both sides), broken down by phase from the task's cold_start; against
 *          `podman build` + `podman run --runtime runsc` of the same folder by hand.
 *   warm — submit → user process start inside gVisor, 200 sequential jobs on a warm sandbox; against a
 *          fresh `podman run --runtime runsc` per task (the container's own start-up included).
 *
 * The user process of `warm` is bench/stamp.c compiled statically and copied into the image: it writes
 * the wall clock at its start (gVisor's clock is the host's).
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { call, makeAccount } from '../test/helpers/http.js';
import { waitJob } from '../test/helpers/jobs.js';
import { ROOT } from '../test/helpers/server.js';
import { benchServer, percentile, record, table } from './lib.js';

const exec = promisify(execFile);
const RUNSC = ['--runtime', '/usr/bin/runsc', '--runtime-flag', 'platform=ptrace', '--runtime-flag', 'network=none'];
const median = (xs: number[]) => percentile([...xs].sort((a, b) => a - b), 50);
const fmt = (ms: number) => ms.toFixed(0);

async function tarball(dir: string): Promise<Buffer> {
  const out = `${dir}.tar.gz`;
  await exec('tar', ['czf', out, '-C', dir, '.']);
  const body = await readFile(out);
  await rm(out, { force: true });
  return body;
}

/** A copy of hello-python with one unique file, so no run reuses another's COPY layer. */
async function freshExample(extra: Record<string, string> = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-oci-src-'));
  await cp(join(ROOT, 'examples/hello-python'), dir, { recursive: true });
  await writeFile(join(dir, 'run-id.txt'), randomBytes(16).toString('hex'));
  for (const [name, text] of Object.entries(extra)) await writeFile(join(dir, name), text);
  return dir;
}

interface ColdRun { totalMs: number; fetch: number; build: number; sandbox: number; init: number; run: number }

async function computalotCold(url: string, token: string, i: number): Promise<ColdRun> {
  const dir = await freshExample();
  const body = await tarball(dir);
  await rm(dir, { recursive: true, force: true });
  const name = `cold-${i + 1}`;
  await call(url, 'POST', '/api/v1/projects', { token, json: { name } });
  const t0 = performance.now();
  const push = await call(url, 'POST', `/api/v1/projects/${name}/push`, { token, body });
  if (push.status !== 201) throw new Error(`push: ${push.status} ${push.text}`);
  const job = await call(url, 'POST', '/api/v1/jobs', { token, json: { project: name, payload: { i } } });
  // Poll every 10 ms (waitJob's 50 ms would add ~25 ms on average to what is measured).
  let res = await call(url, 'GET', `/api/v1/results/${job.body.id}`, { token });
  while (!['completed', 'failed', 'partial', 'cancelled'].includes(res.body.status)) {
    await new Promise((r) => setTimeout(r, 10));
    res = await call(url, 'GET', `/api/v1/results/${job.body.id}`, { token });
  }
  const totalMs = performance.now() - t0;
  if (res.body.status !== 'completed') throw new Error(`cold job failed: ${res.text}`);
  const task = (await call(url, 'GET', `/api/v1/jobs/${job.body.id}/tasks`, { token })).body.tasks[0];
  const c = task.cold_start;
  return { totalMs, fetch: c.fetch_ms, build: c.build_ms, sandbox: c.sandbox_ms, init: c.init_ms, run: task.duration_ms };
}

async function byHandCold(i: number): Promise<{ totalMs: number; build: number; run: number }> {
  const dir = await freshExample();
  const io = await mkdtemp(join(tmpdir(), 'bench-oci-io-'));
  await writeFile(join(io, 'payload.json'), JSON.stringify({ i }));
  const tag = `localhost/bench-by-hand:${randomBytes(4).toString('hex')}`;
  const t0 = performance.now();
  await exec('podman', ['build', '--network=none', '-t', tag, dir]);
  const t1 = performance.now();
  await exec('podman', [...RUNSC, 'run', '--rm', '--network=none', '-v', `${io}:/io`, '-e', 'COMPUTALOT_TASK_PAYLOAD=/io/payload.json',
    '-e', 'COMPUTALOT_RESULT_PATH=/io/result.json', tag, 'python3', 'script.py']);
  const t2 = performance.now();
  JSON.parse(await readFile(join(io, 'result.json'), 'utf8'));
  await exec('podman', ['rmi', tag]).catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
  await rm(io, { recursive: true, force: true });
  return { totalMs: t2 - t0, build: t1 - t0, run: t2 - t1 };
}

export async function cold(): Promise<void> {
  const runs = 7;
  // Alternating, so both sides see the same machine (earlier runs' warm sandboxes stay up, as they would).
  const ours: ColdRun[] = [];
  const hand: Array<{ totalMs: number; build: number; run: number }> = [];
  const { server } = await benchServer({ COMPUTALOT_RUNTIME: 'oci', COMPUTALOT_LOCAL_WORKERS: '1', COMPUTALOT_WORKER_SLOTS: '2' });
  try {
    const acc = await makeAccount(server.url, 'bench');
    for (let i = -1; i < runs; i += 1) {
      const a = await computalotCold(server.url, acc.member, i);
      const b = await byHandCold(i);
      if (i >= 0) { ours.push(a); hand.push(b); }
    }
  } finally {
    await server.stop();
  }
  const ourTotal = median(ours.map((r) => r.totalMs));
  const handTotal = median(hand.map((r) => r.totalMs));
  await record('oci cold start: push → first result, examples/hello-python', 'npm run bench -- cold', [
    table(['system', 'total ms (median of 7)', 'breakdown (medians)'], [
      ['computalot (oci, gVisor)', fmt(ourTotal), `fetch ${fmt(median(ours.map((r) => r.fetch)))} · build ${fmt(median(ours.map((r) => r.build)))} · sandbox ${fmt(median(ours.map((r) => r.sandbox)))} · validate+init+services ${fmt(median(ours.map((r) => r.init)))} · task ${fmt(median(ours.map((r) => r.run)))}`],
      ['by hand: podman build + podman run --runtime runsc', fmt(handTotal), `build ${fmt(median(hand.map((r) => r.build)))} · run ${fmt(median(hand.map((r) => r.run)))}`],
    ]),
    '',
    `Ratio computalot / by hand: ${(ourTotal / handTotal).toFixed(2)}× (target ≤ 1.2×). Runs alternate between the two sides. Each run pushes a new revision (a unique file), so neither side reuses a COPY layer; the FROM and WORKDIR layers are cached on both. computalot's total includes the HTTP push (hashing, storing), the job submit and polling the result every 10 ms.`,
  ].join('\n'));
}

async function stampBinary(): Promise<string> {
  const out = join(await mkdtemp(join(tmpdir(), 'bench-stamp-')), 'stamp');
  await exec('cc', ['-static', '-O2', '-o', out, new URL('./stamp.c', import.meta.url).pathname]);
  return out;
}

const nowUs = () => (performance.timeOrigin + performance.now()) * 1000;

async function computalotWarm(stamp: string, n: number): Promise<number[]> {
  const { server } = await benchServer({ COMPUTALOT_RUNTIME: 'oci', COMPUTALOT_LOCAL_WORKERS: '1', COMPUTALOT_WORKER_SLOTS: '2' });
  try {
    const acc = await makeAccount(server.url, 'bench');
    const dir = await freshExample();
    await cp(stamp, join(dir, 'stamp'));
    await call(server.url, 'POST', '/api/v1/projects', { token: acc.member, json: { name: 'warm' } });
    await call(server.url, 'POST', '/api/v1/projects/warm/push', { token: acc.member, body: await tarball(dir) });
    await rm(dir, { recursive: true, force: true });
    const lat: number[] = [];
    for (let i = -5; i < n; i += 1) {
      const t0 = nowUs();
      const res = await call(server.url, 'POST', '/api/v1/jobs', { token: acc.member, json: { project: 'warm', runner_command: ['./stamp'] } });
      await waitJob(server.url, acc.member, res.body.id, undefined, 120_000);
      const r = await call(server.url, 'GET', `/api/v1/results/${res.body.id}`, { token: acc.member });
      if (i >= 0) lat.push((Number(r.body.aggregate_result) * 1e6 - t0) / 1000);
    }
    return lat.sort((a, b) => a - b);
  } finally {
    await server.stop();
  }
}

async function freshPodmanRuns(stamp: string, n: number): Promise<number[]> {
  const dir = await freshExample();
  await cp(stamp, join(dir, 'stamp'));
  const tag = `localhost/bench-warm-by-hand:${randomBytes(4).toString('hex')}`;
  await exec('podman', ['build', '--network=none', '-t', tag, dir]);
  const io = await mkdtemp(join(tmpdir(), 'bench-oci-io-'));
  const lat: number[] = [];
  try {
    for (let i = -3; i < n; i += 1) {
      const t0 = nowUs();
      await new Promise<void>((resolve, reject) => {
        const child = spawn('podman', [...RUNSC, 'run', '--rm', '--network=none', '-v', `${io}:/io`, '-e', 'BENCH_OUT=/io/stamp.txt', tag, './stamp'], { stdio: 'ignore' });
        child.on('error', reject);
        child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`podman run exited ${code}`))));
      });
      const t1 = Number.parseFloat(await readFile(join(io, 'stamp.txt'), 'utf8')) * 1e6;
      if (i >= 0) lat.push((t1 - t0) / 1000);
    }
    return lat.sort((a, b) => a - b);
  } finally {
    await exec('podman', ['rmi', tag]).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    await rm(io, { recursive: true, force: true });
  }
}

export async function warm(): Promise<void> {
  const stamp = await stampBinary();
  const n = 200;
  const ours = await computalotWarm(stamp, n);
  const hand = await freshPodmanRuns(stamp, 30);
  const f2 = (ms: number) => ms.toFixed(2);
  await record('oci warm dispatch: submit → user process start inside gVisor', 'npm run bench -- warm', [
    table(['system', 'runs', 'p50 ms', 'p99 ms'], [
      ['computalot (oci, warm gVisor sandbox, resident helper; HTTP submit)', n, f2(percentile(ours, 50)), f2(percentile(ours, 99))],
      ['fresh `podman run --runtime runsc` per task', 30, f2(percentile(hand, 50)), f2(percentile(hand, 99))],
    ]),
    '',
    'The user process is bench/stamp.c, compiled statically and copied into the image; it stamps the wall clock at its start. Target (issue 4): computalot p50 ≤ 15 ms.',
  ].join('\n'));
}

export async function main(args: string[]): Promise<void> {
  if (args[0] === 'cold') await cold();
  else await warm();
}
