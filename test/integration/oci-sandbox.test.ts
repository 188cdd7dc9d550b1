/**
 * The sandbox of the oci runtime, for real (podman + gVisor): a task sees gVisor's kernel, cannot reach a
 * port on the host, cannot read a host file, is stopped by its memory and process limits, and is killed
 * with its whole tree at its timeout. Warm tasks share one sandbox; reuse "none" gives each a fresh one.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type Server } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { call, makeAccount, type TestAccount } from '../helpers/http.js';
import { results, submit, tasks, waitJob } from '../helpers/jobs.js';
import { ociOnly } from '../helpers/oci.js';
import { pushProject } from '../helpers/oci-project.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

async function runTask(srv: TestServer, token: string, project: string, payload: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  const job = await submit(srv.url, token, { project, payload, retries: { max_attempts: 1 }, ...extra });
  const done = await waitJob(srv.url, token, job.id, undefined, 120_000);
  const [task] = await tasks(srv.url, token, job.id);
  return { done, task, result: task.result };
}

describe('the oci sandbox (gVisor)', ociOnly(), () => {
  let srv: TestServer;
  let acc: TestAccount;
  let hostPort: Server;
  let port: number;

  before(async () => {
    srv = await startTestServer({ COMPUTALOT_RUNTIME: 'oci', COMPUTALOT_LOCAL_WORKERS: '1', COMPUTALOT_WORKER_SLOTS: '2' });
    acc = await makeAccount(srv.url, 'sandbox');
    await pushProject(srv.url, acc.member, 'box');
    hostPort = createServer((socket) => socket.end('hello from the host\n'));
    await new Promise<void>((resolve) => hostPort.listen(0, '0.0.0.0', resolve));
    port = (hostPort.address() as { port: number }).port;
  });
  after(async () => {
    hostPort?.close();
    await srv?.stop();
  });

  it('runs the task inside gVisor: /proc/version is gVisor\'s, not the host\'s', async () => {
    const { done, result, task } = await runTask(srv, acc.member, 'box', { mode: 'proc_version' });
    assert.equal(done.status, 'completed', JSON.stringify(task));
    const host = await readFile('/proc/version', 'utf8');
    assert.match(result.proc_version, /^Linux version 4\.4\.0/);
    assert.notEqual(result.proc_version.trim(), host.trim());
  });

  it('cannot reach a port on the host, by loopback or by the host\'s address', async () => {
    const addresses = Object.values(networkInterfaces()).flat().filter((a) => a && a.family === 'IPv4' && !a.internal).map((a) => a!.address);
    const hosts = ['127.0.0.1', ...addresses];
    // The port is really open: the host itself connects.
    for (const host of hosts) {
      await new Promise<void>((resolve, reject) => {
        const s = connect(port, host, () => { s.end(); resolve(); });
        s.on('error', reject);
      });
    }
    const { done, result, task } = await runTask(srv, acc.member, 'box', { mode: 'connect', hosts, port });
    assert.equal(done.status, 'completed', JSON.stringify(task));
    for (const host of hosts) assert.notEqual(result.attempts[host], 'connected', `reached ${host}:${port}: ${JSON.stringify(result)}`);
  });

  it('cannot read a file of the host', async () => {
    const secret = `/tmp/computalot-host-secret-${randomBytes(4).toString('hex')}`;
    await writeFile(secret, 'host secret');
    try {
      const { done, result, task } = await runTask(srv, acc.member, 'box', { mode: 'read', path: secret });
      assert.equal(done.status, 'completed', JSON.stringify(task));
      assert.equal(result.content, undefined);
      assert.match(result.error, /FileNotFoundError/);
      const dataDir = await runTask(srv, acc.member, 'box', { mode: 'read', path: `${srv.dataDir}/computalot.db` });
      assert.match(dataDir.result.error, /FileNotFoundError/, 'the server\'s data dir is not visible');
    } finally {
      await rm(secret, { force: true });
    }
  });

  it('cannot make the worker read a host file through a symlink in its attempt folder', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'computalot-host-'));
    await writeFile(join(dir, 'result.json'), '{"stolen": "host secret"}');
    try {
      const viaFile = await runTask(srv, acc.member, 'box', { mode: 'symlink_result', target: join(dir, 'result.json') });
      assert.equal(viaFile.task.result, null, JSON.stringify(viaFile.task));
      assert.deepEqual(viaFile.task.result_warnings, ['no_result']);
      const viaFolder = await runTask(srv, acc.member, 'box', { mode: 'symlink_folder', target: dir });
      assert.equal(viaFolder.task.result, null, JSON.stringify(viaFolder.task));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('is stopped by its memory limit (resources.memory_mb: 256) and runs below it', async () => {
    const small = await runTask(srv, acc.member, 'box', { mode: 'alloc', mb: 64 });
    assert.equal(small.done.status, 'completed', JSON.stringify(small.task));
    assert.equal(small.result.allocated_mb, 64);
    const big = await runTask(srv, acc.member, 'box', { mode: 'alloc', mb: 1024 });
    assert.equal(big.done.status, 'failed');
    assert.notEqual(big.task.exit_code, 0);
    assert.match(big.task.output, /MemoryError/);
  });

  it('is stopped by its process limit (resources.pids: 32)', async () => {
    const { done, result, task } = await runTask(srv, acc.member, 'box', { mode: 'fork', n: 100 });
    assert.equal(done.status, 'completed', JSON.stringify(task));
    assert.ok(result.started < 32, `started ${result.started} processes`);
    assert.match(result.error, /BlockingIOError|Resource temporarily unavailable/);
  });

  it('is killed with its whole process tree at its timeout', async () => {
    const { done, task } = await runTask(srv, acc.member, 'box', { mode: 'tree' }, { timeout_s: 2 });
    assert.equal(done.status, 'failed');
    assert.equal(task.attempts[0].error.code, 'timeout', JSON.stringify(task.attempts));
    assert.match(task.output, /tree started/);
    // The same warm sandbox: no sleep of the timed-out tree is left in it.
    const { result } = await runTask(srv, acc.member, 'box', { mode: 'procs' });
    assert.deepEqual(result.procs.filter((p: string) => p.includes('sleep')), [], JSON.stringify(result.procs));
  });

  it('a daemon that escapes its task\'s session (setsid) does not outlive the task in the warm sandbox', async () => {
    const { done } = await runTask(srv, acc.member, 'box', { mode: 'escape' });
    assert.equal(done.status, 'completed');
    const { result } = await runTask(srv, acc.member, 'box', { mode: 'procs' });
    assert.deepEqual(result.procs.filter((p: string) => p.includes('sleep 301')), [], JSON.stringify(result.procs));
  });

  it('gives the runner protocol\'s files as sandbox paths and follows progress', async () => {
    const { done, result, task } = await runTask(srv, acc.member, 'box', { mode: 'progress' });
    assert.equal(done.status, 'completed', JSON.stringify(task));
    assert.match(result.env.COMPUTALOT_TASK_PAYLOAD, /^\/computalot\/io\/attempts\/.+\/payload\.json$/);
    assert.match(result.env.COMPUTALOT_SCRATCH_DIR, /^\/computalot\/io\/attempts\/.+\/scratch$/);
    assert.equal(result.env.COMPUTALOT_PROJECT, 'box');
    assert.equal(task.latest_progress?.progress, 0.5);
  });

  it('never shares a sandbox between projects, even with identical tarballs (one content hash)', async () => {
    const mine = await runTask(srv, acc.member, 'box', { mode: 'write_tmp' });
    assert.equal(mine.done.status, 'completed');
    const twin = await pushProject(srv.url, acc.member, 'box-twin');
    const box = await call(srv.url, 'GET', '/api/v1/projects/box', { token: acc.member });
    assert.equal(twin.content_hash, box.body.content_hash, 'the same content hash');
    const other = await runTask(srv, acc.member, 'box-twin', { mode: 'write_tmp' });
    assert.equal(other.result.found_before, false, 'the twin project got its own sandbox');
    assert.ok(other.task.cold_start, 'and its own preparation');
  });

  it('runs warm tasks in one sandbox with reuse "sandbox", and each in a fresh one with reuse "none"', async () => {
    const first = await runTask(srv, acc.member, 'box', { mode: 'write_tmp' });
    const second = await runTask(srv, acc.member, 'box', { mode: 'write_tmp' });
    assert.equal(second.result.found_before, true, 'a warm sandbox is shared by the tasks of its revision');
    assert.equal(first.task.cold_start, null);
    await pushProject(srv.url, acc.member, 'fresh', { manifest: { runtime: { reuse: 'none' } } });
    const a = await runTask(srv, acc.member, 'fresh', { mode: 'write_tmp' });
    const b = await runTask(srv, acc.member, 'fresh', { mode: 'write_tmp' });
    assert.equal(a.done.status, 'completed', JSON.stringify(a.task));
    assert.equal(b.result.found_before, false, 'reuse "none" starts every task in a fresh sandbox');
    const res = await results(srv.url, acc.member, b.done.id);
    assert.equal(res.status, 'completed');
  });
});

describe('runtime.sandbox "runc" where the server allows it', ociOnly(), () => {
  let srv: TestServer;
  let acc: TestAccount;
  before(async () => {
    srv = await startTestServer({ COMPUTALOT_RUNTIME: 'oci', COMPUTALOT_LOCAL_WORKERS: '1', COMPUTALOT_ALLOW_RUNC: '1' });
    acc = await makeAccount(srv.url, 'runc');
    await pushProject(srv.url, acc.member, 'plain', { manifest: { runtime: { sandbox: 'runc' } } });
  });
  after(async () => {
    await srv?.stop();
  });

  it('runs the task under runc (the host kernel), still with no network and its process limit', async () => {
    const host = await readFile('/proc/version', 'utf8');
    const { done, result, task } = await runTask(srv, acc.member, 'plain', { mode: 'proc_version' });
    assert.equal(done.status, 'completed', JSON.stringify(task));
    assert.equal(result.proc_version.trim(), host.trim());
    const net = await runTask(srv, acc.member, 'plain', { mode: 'connect', hosts: ['1.1.1.1'], port: 53 });
    assert.notEqual(net.result.attempts['1.1.1.1'], 'connected');
    const fork = await runTask(srv, acc.member, 'plain', { mode: 'fork', n: 200 });
    assert.ok(fork.result.started < 200, `the pids cgroup stopped it: ${JSON.stringify(fork.result)}`);
  });
});
