/**
 * Test servers. `startTestServer` runs the real server in this process on a free port (real HTTP, real
 * database, real files); `spawnServer` runs `npm start`'s command as a child process, for tests that
 * need the server exactly as a user starts it (curl walk-through, SIGTERM).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { testDatabase } from './db.js';
import { recordBuiltImages } from './oci.js';

export const ADMIN_TOKEN = 'flk_test_admin_token_0123456789abcdefghij';
export const ROOT = new URL('../../', import.meta.url).pathname;

export interface TestServer {
  url: string;
  dataDir: string;
  /** The server's PostgreSQL database (null on SQLite), for tests that act on it directly. */
  databaseUrl: string | null;
  server: RunningServer;
  stop(): Promise<void>;
}

export async function startTestServer(env: Record<string, string> = {}): Promise<TestServer> {
  const dataDir = await mkdtemp(join(tmpdir(), 'computalot-test-'));
  const db = await testDatabase();
  const config = loadConfig({
    PORT: '0', COMPUTALOT_DATA_DIR: dataDir, COMPUTALOT_ADMIN_TOKEN: ADMIN_TOKEN, COMPUTALOT_RUNTIME: 'process',
    COMPUTALOT_LOCAL_WORKERS: '0', ...(db.url ? { DATABASE_URL: db.url } : {}), ...env,
  });
  const server = await startServer(config, { logger: false });
  return {
    url: server.url,
    dataDir,
    databaseUrl: db.url,
    server,
    async stop() {
      await server.stop();
      await db.drop();
      await recordBuiltImages(dataDir);
      // Retries (Node's own, on ENOTEMPTY and the like): once, with the oci runtime, something still wrote
      // into work/oci while the folder was being removed after stop (seen in a full run, not reproduced).
      await rm(dataDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
    },
  };
}

export interface SpawnedServer {
  url: string;
  child: ChildProcess;
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Runs `npm start` (or, with via 'node', the server process it ends up running, so its exit code can be
 * read) in its own process group and waits for its "listening on" line. Signals go to the whole group,
 * as a terminal's Ctrl-C or a service manager's stop would.
 */
export async function spawnServer(env: Record<string, string>, via: 'npm' | 'node' = 'npm'): Promise<SpawnedServer> {
  const [cmd, args] = via === 'npm'
    ? ['npm', ['start', '--silent']]
    : [process.execPath, [...(process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir=' + process.env.BENCH_CPU_PROF] : []), '--import', 'tsx', 'src/main.ts', 'serve']];
  const child = spawn(cmd as string, args as string[], {
    cwd: ROOT, env: { ...process.env, PORT: '0', ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true,
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in 30 s:\n${out}`)), 30_000);
    const check = () => {
      const match = /listening on (http:\/\/\S+)/.exec(out);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    };
    child.stdout!.on('data', check);
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited with ${code}:\n${out}`)); });
  });
  return {
    url,
    child,
    output: () => out,
    stop(signal = 'SIGTERM') {
      if (child.exitCode !== null) return Promise.resolve(child.exitCode);
      return new Promise((resolve) => {
        child.once('exit', (code) => resolve(code));
        process.kill(-child.pid!, signal);
      });
    },
  };
}
