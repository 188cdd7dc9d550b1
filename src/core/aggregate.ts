/**
 * A job's `aggregate_result`, `progress` and final `status` (SPEC §6), from its tasks. Pure.
 *
 * Invariants:
 * - Tasks are taken in index order whatever order they are given in; only COMPLETED tasks contribute a
 *   result (a failed task may carry a stdout result, but it is not an answer), others contribute null.
 * - aggregate_result by type:
 *     structured_runner  without fan_out: the one task's result; with fan_out: the results in task order,
 *                        one entry per TASK (with batch_size a task's result is not split or flattened)
 *     sweep              {objective, best: {index, params, result, value} | null, table: [{index, params,
 *                        value, status}], note}; `note` says why `best` is null (no objective, or no
 *                        completed point reported a number) and is null otherwise; ties go to the lower index
 *     map_reduce         the reduce task's result (null until it completed)
 *     benchmark          {metric, goal, strategies: [{strategy, runs, completed, mean, median, min, max,
 *                        stdev}], ranking}; metric is objective.key, or duration_ms (goal minimize) without an
 *                        objective; ranking names the strategies that have a value, best MEAN first, ties in
 *                        the order strategies were written; stdev is the sample one (n−1), 0 for one value
 * - The objective value is result[key] when it is a finite number; a dotted key ("metrics.loss") that is not
 *   itself a key walks nested objects. Anything else is null, never coerced.
 * - Final status (jobOutcome), once no task is queued, preparing or running:
 *     every task completed                         → completed
 *     none completed, at least one cancelled       → cancelled
 *     none completed, none cancelled               → failed
 *     some completed, the rest failed or cancelled → partial (the completed results are usable; a cancel
 *                                                    after some work is partial, status_reason says why)
 *   map_reduce: its product is the reduce result, so a reduce that failed (or was cancelled) makes the job
 *   failed (cancelled) whatever the map tasks did.
 */
import type { JobState } from './states.js';
import type { TaskCounts } from './model.js';
import type { JobType, ObjectiveSpec } from '../protocol/jobs.js';

export interface AggregateTask {
  index: number; item: unknown; status: string; result: unknown; result_quality: number | null;
  result_warnings: string[]; error: { code: string; message: string } | null; kind: string;
  strategy?: string; repeat?: number; params?: Record<string, unknown>; duration_ms?: number | null;
}

/** The parts of a job's spec that shape its aggregate; a ValidSubmit fits. */
export interface AggregateSpec {
  fan_out?: unknown;
  objective?: ObjectiveSpec | null;
  sweep?: { objective?: ObjectiveSpec };
}

type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);
const finite = (value: unknown): number | null => (typeof value === 'number' && Number.isFinite(value) ? value : null);
const answer = (task: AggregateTask | undefined): unknown => (task?.status === 'completed' ? (task.result ?? null) : null);

export function objectiveValue(result: unknown, key: string): number | null {
  if (!isObject(result)) return null;
  if (key in result) return finite(result[key]);
  let value: unknown = result;
  for (const part of key.split('.')) value = isObject(value) ? value[part] : undefined;
  return finite(value);
}

/** a is strictly better than b under goal. */
const better = (a: number, b: number, goal: ObjectiveSpec['goal']) => (goal === 'maximize' ? a > b : a < b);

function sweepAggregate(tasks: AggregateTask[], objective: ObjectiveSpec | null) {
  const table = tasks.map((task) => ({
    index: task.index,
    params: task.params ?? (isObject(task.item) ? task.item : {}),
    value: objective && task.status === 'completed' ? objectiveValue(task.result, objective.key) : null,
    status: task.status,
  }));
  let best: { index: number; params: Json; result: unknown; value: number } | null = null;
  for (let i = 0; objective && i < table.length; i += 1) {
    const row = table[i]!;
    if (row.value === null || (best && !better(row.value, best.value, objective.goal))) continue;
    best = { index: row.index, params: row.params, result: tasks[i]!.result, value: row.value };
  }
  const note = !objective ? 'no objective was given (sweep.objective), so no best point is chosen'
    : best ? null : `no completed point reported a number at result.${objective.key}`;
  return { objective, best, table, note };
}

export interface StrategyStats {
  strategy: string; runs: number; completed: number;
  mean: number | null; median: number | null; min: number | null; max: number | null; stdev: number | null;
}

function stats(strategy: string, runs: number, completed: number, values: number[]): StrategyStats {
  if (values.length === 0) return { strategy, runs, completed, mean: null, median: null, min: null, max: null, stdev: null };
  const sorted = [...values].sort((a, b) => a - b);
  const n = sorted.length;
  const mean = sorted.reduce((sum, v) => sum + v, 0) / n;
  const median = n % 2 === 1 ? sorted[(n - 1) / 2]! : (sorted[n / 2 - 1]! + sorted[n / 2]!) / 2;
  const variance = n > 1 ? sorted.reduce((sum, v) => sum + (v - mean) ** 2, 0) / (n - 1) : 0;
  return { strategy, runs, completed, mean, median, min: sorted[0]!, max: sorted[n - 1]!, stdev: Math.sqrt(variance) };
}

function benchmarkAggregate(tasks: AggregateTask[], objective: ObjectiveSpec | null) {
  const metric = objective?.key ?? 'duration_ms';
  const goal = objective?.goal ?? 'minimize';
  const groups = new Map<string, { runs: number; completed: number; values: number[] }>();
  for (const task of tasks) {
    const name = task.strategy ?? (isObject(task.item) && typeof task.item.strategy === 'string' ? task.item.strategy : '');
    const group = groups.get(name) ?? { runs: 0, completed: 0, values: [] };
    groups.set(name, group);
    group.runs += 1;
    if (task.status !== 'completed') continue;
    group.completed += 1;
    const value = objective ? objectiveValue(task.result, objective.key) : finite(task.duration_ms);
    if (value !== null) group.values.push(value);
  }
  const strategies = [...groups].map(([name, g]) => stats(name, g.runs, g.completed, g.values));
  // Array.prototype.sort is stable, so equal means keep the order the strategies were written in.
  const ranking = strategies.filter((s) => s.mean !== null)
    .sort((a, b) => (goal === 'maximize' ? b.mean! - a.mean! : a.mean! - b.mean!))
    .map((s) => s.strategy);
  return { metric, goal, strategies, ranking };
}

export function aggregateResults(type: JobType, tasks: readonly AggregateTask[], spec: AggregateSpec): unknown {
  const ordered = [...tasks].sort((a, b) => a.index - b.index);
  switch (type) {
    case 'sweep': return sweepAggregate(ordered, spec.sweep?.objective ?? spec.objective ?? null);
    case 'benchmark': return benchmarkAggregate(ordered, spec.objective ?? null);
    case 'map_reduce': return answer(ordered.find((task) => task.kind === 'reduce'));
    default: return spec.fan_out !== undefined ? ordered.map(answer) : answer(ordered[0]);
  }
}

const ended = (c: TaskCounts) => c.completed + c.failed + c.cancelled;
const total = (c: TaskCounts) => ended(c) + c.queued + c.preparing + c.running;

/**
 * 0..1: ended tasks over tasksTotal (or the tasks counted, when more), plus `inFlight`, the summed
 * latest_progress of running tasks, so a one-task job moves before it ends.
 */
export function jobProgress(counts: TaskCounts, tasksTotal = 0, inFlight = 0): number {
  const denominator = Math.max(tasksTotal, total(counts));
  if (denominator === 0) return 0;
  return Math.min(1, Math.max(0, (ended(counts) + Math.max(0, inFlight)) / denominator));
}

/** The final job status, or null while any task is open (no tasks at all: completed, nothing failed). `reduce`: a map_reduce job's reduce task status. */
export function jobOutcome(counts: TaskCounts, opts: { reduce?: string | null } = {}): JobState | null {
  if (counts.queued + counts.preparing + counts.running > 0) return null;
  if (opts.reduce === 'failed' || opts.reduce === 'cancelled') return opts.reduce;
  if (counts.completed === total(counts)) return 'completed';
  if (counts.completed === 0) return counts.cancelled > 0 ? 'cancelled' : 'failed';
  return 'partial';
}
