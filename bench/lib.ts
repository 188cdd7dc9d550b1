/**
 * Shared pieces of the benchmarks: a real server process (so its RSS can be read from /proc), sampling,
 * percentiles, and appending a dated section to bench/RESULTS.md with the command and the machine.
 */
import { appendFile, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { cpus, totalmem, tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { spawnServer, ADMIN_TOKEN, ROOT, type SpawnedServer } from '../test/helpers/server.js';

export { ADMIN_TOKEN };

export async function benchServer(env: Record<string, string> = {}): Promise<{ server: SpawnedServer; dataDir: string }> {
  const dataDir = await mkdtemp(join(tmpdir(), 'computalot-bench-'));
  const server = await spawnServer({
    COMPUTALOT_DATA_DIR: dataDir, COMPUTALOT_ADMIN_TOKEN: ADMIN_TOKEN, COMPUTALOT_RUNTIME: 'process', LOG_LEVEL: 'warn', ...env,
  }, 'node');
  // A benchmark's database and blobs are only its own: they go with the server (they were piling up in tmp).
  const stop = server.stop.bind(server);
  server.stop = async (signal) => {
    try {
      return await stop(signal);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  };
  return { server, dataDir };
}

/**
 * CPU seconds (user + system) used so far by the processes whose command line matches: the server, its
 * PostgreSQL backends, redis-server, a Node front. On a machine with few cores throughput is bounded by
 * CPU per request, so the submit rows report it beside the rate (Linux /proc, clock ticks of 10 ms).
 */
export async function cpuSeconds(match: (cmdline: string, pid: number) => boolean): Promise<number> {
  let ticks = 0;
  for (const entry of await readdir('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    try {
      const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).replaceAll('\0', ' ');
      if (!match(cmdline, pid)) continue;
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
      // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // The process ended while we read it.
    }
  }
  return ticks / 100;
}

/** Runs `work` and returns its value with the CPU seconds the matching processes spent meanwhile. */
export async function withCpu<T>(match: (cmdline: string, pid: number) => boolean, work: () => Promise<T>): Promise<{ value: T; cpu: number }> {
  const before = await cpuSeconds(match);
  const value = await work();
  return { value, cpu: (await cpuSeconds(match)) - before };
}

export async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb * 1024;
}

/** Samples a process's RSS every `everyMs` until stopped; returns the peak. */
export function sampleRss(pid: number, everyMs = 10): { stop(): Promise<number> } {
  let peak = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      peak = Math.max(peak, await rssBytes(pid).catch(() => 0));
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return { async stop() { running = false; await loop; return peak; } };
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, i)]!;
}

export const mb = (bytes: number) => (bytes / 1e6).toFixed(1);

export function table(headers: string[], rows: Array<Array<string | number>>): string {
  const line = (cells: Array<string | number>) => `| ${cells.join(' | ')} |`;
  return [line(headers), line(headers.map(() => '---')), ...rows.map(line)].join('\n');
}

export async function record(title: string, command: string, body: string): Promise<void> {
  const machine = `${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;
  const section = `\n## ${title} — ${new Date().toISOString()}\n\nCommand: \`${command}\`  \nMachine: ${machine}\n\n${body}\n`;
  process.stdout.write(section);
  await appendFile(join(ROOT, 'bench/RESULTS.md'), section);
}

/** A fresh PostgreSQL database for a benchmark, or null when PostgreSQL is not reachable. */
export async function benchPgUrl(): Promise<string | null> {
  const url = process.env.COMPUTALOT_TEST_PG_URL ?? 'postgres://computalot:computalot@127.0.0.1:5432/postgres';
  const c = new pg.Client(url);
  try {
    await c.connect();
    // An autovacuum worker (a superuser backend) left from the previous run makes the drop fail for
    // a while: retry instead of silently running without the PostgreSQL rows.
    for (let attempt = 0; ; attempt += 1) {
      try {
        await c.query('DROP DATABASE IF EXISTS computalot_bench WITH (FORCE)');
        break;
      } catch (error) {
        if (attempt >= 50) throw error;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    await c.query('CREATE DATABASE computalot_bench');
    await c.end();
    const u = new URL(url);
    u.pathname = '/computalot_bench';
    return u.toString();
  } catch (error) {
    process.stderr.write(`bench: no PostgreSQL rows (${(error as Error).message})\n`);
    await c.end().catch(() => undefined);
    return null;
  }
}
