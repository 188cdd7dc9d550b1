/**
 * Push ingest: a ~200 MB tarball (incompressible files, so the body really is 200 MB) pushed with curl
 * to a real server process. Measures MB/s and the server's RSS before and at its peak during the push,
 * for plain tar and tar.gz, on SQLite (and PostgreSQL when reachable). Side by side, the floors a push
 * cannot beat on this machine: hashing the same bytes (`sha256sum`) and unpacking them (`tar x`), which
 * is what a hand-rolled "save the upload and extract it" server would do.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { call, makeAccount } from '../test/helpers/http.js';
import { benchServer, mb, record, rssBytes, sampleRss, table, benchPgUrl } from './lib.js';

const TOTAL = 200 * 1024 * 1024;
const FILES = 50;

async function makeTarballs(dir: string): Promise<{ tar: string; tgz: string }> {
  const src = join(dir, 'src');
  execFileSync('mkdir', ['-p', src]);
  await writeFile(join(src, 'Dockerfile'), 'FROM scratch\n');
  for (let i = 0; i < FILES; i += 1) await writeFile(join(src, `data-${i}.bin`), randomBytes(TOTAL / FILES));
  const tar = join(dir, 'code.tar');
  const tgz = join(dir, 'code.tar.gz');
  execFileSync('tar', ['cf', tar, '-C', src, '.']);
  execFileSync('sh', ['-c', `tar cf - -C ${src} . | gzip -1 > ${tgz}`]);
  return { tar, tgz };
}

function timed(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

const RUNS = 3;

/** Three pushes into a fresh server (each into its own project, so none is `unchanged`): median MB/s. */
async function pushRuns(store: string, env: Record<string, string>, file: string, label: string) {
  const { server } = await benchServer(env);
  try {
    const acc = await makeAccount(server.url, 'bench');
    const pid = server.child.pid!;
    const before = await rssBytes(pid);
    const sampler = sampleRss(pid);
    const speeds: number[] = [];
    const size = (await stat(file)).size;
    for (let i = 0; i < RUNS; i += 1) {
      await call(server.url, 'POST', '/api/v1/projects', { token: acc.member, json: { name: `big-${i}` } });
      const seconds = timed(() => execFileSync('curl', ['-sS', '-o', '/dev/null', '-X', 'POST', '-T', file,
        '-H', `Authorization: Bearer ${acc.member}`, `${server.url}/api/v1/projects/big-${i}/push`]));
      speeds.push(size / 1e6 / seconds);
    }
    const peak = await sampler.stop();
    speeds.sort((a, b) => a - b);
    return [store, label, mb(size), speeds[1]!.toFixed(0), `${speeds[0]!.toFixed(0)}–${speeds[2]!.toFixed(0)}`, mb(before), mb(peak), mb(peak - before)];
  } finally {
    await server.stop(); // benchServer's stop removes its data folder
  }
}

export async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'computalot-bench-push-'));
  try {
    const { tar, tgz } = await makeTarballs(dir);
    const rows: Array<Array<string | number>> = [];
    for (const [label, file] of [['tar', tar], ['tar.gz', tgz]] as const) {
      rows.push(await pushRuns('sqlite', {}, file, label));
      const url = await benchPgUrl();
      if (url) rows.push(await pushRuns('postgres', { DATABASE_URL: url }, file, label));
    }
    const floors: Array<Array<string | number>> = [];
    for (const [label, file] of [['tar', tar], ['tar.gz', tgz]] as const) {
      const size = (await stat(file)).size;
      const hash = timed(() => execFileSync('sha256sum', [file]));
      const out = join(dir, `x-${label}`);
      execFileSync('mkdir', ['-p', out]);
      const unpack = timed(() => execFileSync('tar', [label === 'tar' ? 'xf' : 'xzf', file, '-C', out]));
      floors.push([label, (size / 1e6 / hash).toFixed(0), (size / 1e6 / unpack).toFixed(0)]);
    }
    await record('push ingest (200 MB tarball)', 'npm run bench -- push', [
      table(['store', 'format', 'body MB', 'push MB/s (median of 3)', 'range', 'server RSS before MB', 'peak RSS MB', 'RSS growth MB'], rows),
      '',
      'Floors on the same files, same run (what any server must at least do, without checking or hashing every entry):',
      '',
      table(['format', 'sha256sum MB/s', 'tar x to disk MB/s'], floors),
      '',
      'Targets (issue 2): push ≥ 200 MB/s; server RSS grows < 64 MB during the push.',
    ].join('\n'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
