/**
 * The peers the job benchmarks compare against, measured in the same run: BullMQ on a local Redis doing
 * the same work (enqueue → a worker spawns the same command), and the floor (spawning it directly).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue, Worker, type Job } from 'bullmq';

export interface Redis { port: number; pid: number; stop(): void }

/**
 * A local redis-server. By default in memory only (nothing written: the kindest setting for the peer);
 * with `aofDir`, an append-only file there fsynced every second, which BullMQ's "Going to production"
 * guide recommends (docs.bullmq.io/guide/going-to-production): like computalot's SQLite (WAL,
 * synchronous=NORMAL), it then keeps every accepted job through a crash of its process.
 */
export async function startRedis(port = 6392, aofDir: string | null = null): Promise<Redis> {
  const persistence = aofDir ? ['--dir', aofDir, '--appendonly', 'yes', '--appendfsync', 'everysec'] : ['--appendonly', 'no'];
  const child: ChildProcess = spawn('redis-server', ['--port', String(port), '--save', '', ...persistence], { stdio: 'ignore' });
  await sleep(400);
  return { port, pid: child.pid!, stop: () => child.kill() };
}

/** Spawns argv and resolves when it exits (what every worker here does per task). */
export function run(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore', env });
    child.once('error', reject);
    child.once('exit', (code) => resolve(code ?? -1));
  });
}

export interface BullSetup { queue: Queue; worker: Worker; close(): Promise<void> }

/** A BullMQ queue and a worker (concurrency `slots`) whose processor spawns `argv`, with the job data in env. */
export async function bull(redis: Redis, name: string, slots: number, argv: string[]): Promise<BullSetup> {
  const connection = { host: '127.0.0.1', port: redis.port };
  const queue = new Queue(name, { connection });
  const worker = new Worker(name, async (job: Job) => {
    await run(argv, { ...process.env, BENCH_OUT: String(job.data.out ?? '') });
  }, { connection, concurrency: slots });
  await worker.waitUntilReady();
  return {
    queue, worker,
    async close() {
      await worker.close();
      await queue.obliterate({ force: true }).catch(() => undefined);
      await queue.close();
    },
  };
}

/** The floor: `count` spawns of argv, `slots` at a time, no queue at all. */
export async function directSpawns(argv: string[], count: number, slots: number): Promise<number> {
  const t0 = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: slots }, async () => {
    while (next < count) {
      next += 1;
      await run(argv);
    }
  }));
  return performance.now() - t0;
}

export interface BullFront { url: string; pid: number; stop(): Promise<void> }

/** bench/bull-http.ts in its own process: BullMQ behind HTTP, for rows that do computalot's work (HTTP submit). */
export async function bullHttp(redis: Redis, name: string): Promise<BullFront> {
  const child = spawn(process.execPath, ['--import', 'tsx', new URL('./bull-http.ts', import.meta.url).pathname, String(redis.port), name], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const match = /listening on (http:\/\/\S+)/.exec(out);
      if (match?.[1]) resolve(match[1]);
    });
    child.once('exit', (code) => reject(new Error(`bull-http exited with ${code}`)));
  });
  return {
    url,
    pid: child.pid!,
    stop: () => new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    }),
  };
}
