/**
 * Attempt throughput and dispatch latency of the `process` runtime: in-process spawn, the Node spawner
 * process (src/runtime/spawner/) and the C helper (the default, src/runtime/helper-launcher.ts), which keeps each
 * task's tree with a cgroup where the host allows it (`helper`) or with an anchor process (`helper-anchor`,
 * COMPUTALOT_TASK_CGROUPS=off). N attempts
 * of `true`, C at a time, straight through `ProcessRuntime` (no store, no HTTP), from a process that first fills ~150 MB of heap the way a running server has, since
 * the cost of fork() grows with the parent's memory.
 *
 *   node --import tsx bench/spawn.ts [--n 2000] [--concurrency 8] [--heap-mb 150] [--modes inline,process,helper,helper-anchor]
 *
 * Reports attempts/s and run() → onStart p50/p99 per mode. Standalone on purpose: it touches no server, so
 * it measures the runtime alone and needs no database.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { defaultManifest } from '../src/core/manifest.js';
import type { Prepared } from '../src/runtime/port.js';
import { HelperLauncher } from '../src/runtime/helper-launcher.js';
import { ProcessRuntime, type ProcessRuntimeOptions } from '../src/runtime/process-runtime.js';

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '8' },
    'heap-mb': { type: 'string', default: '150' },
    modes: { type: 'string', default: 'inline,process,helper,helper-anchor' },
  },
});
const N = Number(values.n);
const CONCURRENCY = Number(values.concurrency);
type Mode = NonNullable<ProcessRuntimeOptions['spawner']> | 'helper-anchor';
const modes = values.modes.split(',') as Mode[];

/** Many small live objects, like a server's heap: their pages are touched, so fork() must copy their tables. */
function ballast(mb: number): unknown[] {
  const keep: unknown[] = [];
  for (let bytes = 0; bytes < mb * 1e6; bytes += 1_000) keep.push({ id: bytes, text: 'x'.repeat(900) + bytes, at: [bytes, bytes + 1] });
  return keep;
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;

async function runMode(mode: Mode, workDir: string): Promise<string> {
  const runtime = new ProcessRuntime({
    spawner: mode === 'helper-anchor' ? 'helper' : mode, taskCgroups: mode !== 'helper-anchor',
    unpack: (_tarball, dest) => mkdir(dest, { recursive: true }).then(() => {}),
  });
  const prepared: Prepared = await runtime.prepare({
    projectId: 'prj_bench', contentHash: `sha256:${'0'.repeat(64)}`, tarballPath: '/nonexistent', manifest: defaultManifest(null),
    workDir, onPhase: () => {}, onLog: () => {}, signal: new AbortController().signal,
  });
  const one = async (i: number): Promise<number> => {
    const t0 = performance.now();
    let startMs = NaN;
    const attempt = runtime.run({
      prepared, runnerCommand: ['true'], payload: { i }, env: {}, timeoutS: 60, checkpointDir: null,
      ids: { jobId: 'job_b', taskId: `tsk_${i}`, taskIndex: i, taskCount: N, attempt: 1, project: 'bench', contentHash: prepared.contentHash },
      onOutput: () => {}, onProgress: () => {}, onStart: () => void (startMs = performance.now() - t0),
    });
    const outcome = await attempt.outcome;
    if (outcome.exitCode !== 0) throw new Error(`attempt ${i} failed: ${JSON.stringify(outcome)}`);
    return startMs;
  };
  for (let i = 0; i < 50; i += 1) await one(-1 - i); // warm up: JIT, the spawner's own start
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < N) latencies.push(await one(next++));
  }));
  const seconds = (performance.now() - started) / 1000;
  // What the helper ended up with: `helper` falls back to anchors where cgroups are not writable.
  const tree = runtime.launcher instanceof HelperLauncher ? ` (${runtime.launcher.treeMode} per task)` : '';
  await runtime.close();
  latencies.sort((a, b) => a - b);
  return `| ${mode}${tree} | ${N} | ${CONCURRENCY} | ${(N / seconds).toFixed(0)} | ${pct(latencies, 50).toFixed(2)} | ${pct(latencies, 99).toFixed(2)} |`;
}

const keep = ballast(Number(values['heap-mb']));
const rssMb = (process.memoryUsage().rss / 1e6).toFixed(0);
const workDir = await mkdtemp(join(tmpdir(), 'computalot-spawn-bench-'));
const rows: string[] = [];
try {
  for (const mode of modes) rows.push(await runMode(mode, workDir));
} finally {
  await rm(workDir, { recursive: true, force: true });
}
process.stdout.write(`process runtime, \`true\` attempts; parent RSS ${rssMb} MB (${keep.length} ballast objects)\n\n`);
process.stdout.write(['| spawner | attempts | concurrent | attempts/s | run→onStart p50 ms | p99 ms |', '|---|---|---|---|---|---|', ...rows].join('\n') + '\n');
