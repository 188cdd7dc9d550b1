/**
 * Expands a validated submit body into the tasks to create (SPEC §6). Pure: no I/O, no clock, no ids.
 *
 * Invariants:
 * - Every rule that needs more than one field is checked here, before any task is built; all problems are
 *   reported together in one `validation_failed` (422), each at the JSON path of the field to fix.
 * - Task indexes are 0..n-1 in the order below; results, `results` of a reduce and aggregates use it.
 *     fan_out.by "k"   element i (or slice i of batch_size) of payload.k; payload.k is replaced by it
 *     fan_out.items    item i (or slice i); the payload gains "item" (or "items" with batch_size)
 *     sweep            the cartesian grid with the parameters in the order written and the LAST one
 *                      varying fastest (nested loops, like itertools.product); payload gains "params"
 *     benchmark        repeat-major: index = repeat × strategies + strategy, so the runs of every strategy
 *                      are interleaved in time and drift (thermal, noisy neighbours) spreads evenly over
 *                      them; `repeat` counts from 0 like `index`
 *     map_reduce       the map tasks as for fan_out (kind "map"); the reduce task, created later by the
 *                      scheduler, takes index n (one past the last map task); its payload is the job's
 *                      payload without the fanned-out key, then reduce.payload, then "results"
 * - Type-specific fields sent with another type are problems (a `sweep` on a structured_runner job means
 *   the user forgot `type`); so are batch_size without fan_out, COMPUTALOT_* env names (the runner
 *   protocol's), gpu_count > 0 without profile gpu (no worker would ever take it), and empty fan-out arrays.
 * - A job has 1..100,000 tasks, the reduce task included; the count is computed before anything is built.
 * - Task payloads are shallow copies: nested values are shared with the job payload, so callers serialise
 *   them and never mutate them (this keeps a 100,000-task plan to a few milliseconds).
 * - runner_command: the strategy's (benchmark) or the reduce's, else the job's, else the manifest's
 *   entrypoint.command; a task with none of them is a problem at /runner_command.
 */
import type { JobType, ObjectiveSpec, ValidSubmit } from '../protocol/jobs.js';
import { AppError, type Problem } from './errors.js';
import { pointer } from './manifest-problems.js';

export const MAX_TASKS_PER_JOB = 100_000;

/**
 * What the task payloads of one job may come to in all. Every task stores its own copy of the job's
 * payload, so a 2 MiB payload fanned out over 3,000 items was ~6 GB of rows built in memory at once: the
 * server ran out of heap and died. The body's 10 MiB limit bounds one copy, not the product.
 */
export const MAX_JOB_PAYLOAD_BYTES = 64 * 1024 * 1024;

/**
 * A job's env and each of its commands, in characters: they become a task's environment and argv, which
 * the kernel takes only up to ~2 MiB together (E2BIG). Each string alone is bounded in protocol/jobs.ts.
 */
export const MAX_ENV_CHARS = 128 * 1024;
export const MAX_COMMAND_CHARS = 128 * 1024;
/** `meta` and `variant` as JSON: they are echoed in every listing and result of the job. */
export const MAX_ECHOED_CHARS = 64 * 1024;

export type TaskKind = 'task' | 'map' | 'reduce';
type Payload = Record<string, unknown>;

export interface PlannedTask {
  index: number;
  kind: 'task' | 'map';
  payload: Payload;
  /** What the task works on, shown in results: the element, slice, item, grid point or {strategy, repeat}. */
  item: unknown;
  runner_command: string[];
  params?: Payload;
  strategy?: string;
  repeat?: number;
}

export interface ReducePlan { index: number; runner_command: string[]; payload: Payload }

export interface JobPlan {
  type: JobType;
  /** The job's own command (its runner_command, else the entrypoint); null only for a benchmark whose every strategy names one. */
  runnerCommand: string[] | null;
  tasks: PlannedTask[];
  reduce: ReducePlan | null;
  /** sweep.objective for a sweep, objective for a benchmark; null otherwise or when absent. */
  objective: ObjectiveSpec | null;
  /** tasks.length plus the reduce task to come. */
  tasksTotal: number;
}

export interface PlanContext { entrypoint: readonly string[] | null }

export function validationFailed(problems: Problem[]): AppError {
  const first = problems[0]!;
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more problem(s))` : '';
  return new AppError('validation_failed', { summary: `${first.path || 'the body'} ${first.message}${more}` }, { problems });
}

/** Job types each type-specific field belongs to; sent with another type it is a mistake, not noise. */
const FIELD_TYPES: Record<string, readonly JobType[]> = {
  fan_out: ['structured_runner', 'map_reduce'], sweep: ['sweep'], reduce: ['map_reduce'],
  strategies: ['benchmark'], repeats: ['benchmark'], objective: ['benchmark'],
};

/** The field a type cannot do without. */
const TYPE_FIELD: Partial<Record<JobType, 'sweep' | 'strategies' | 'fan_out'>> = { sweep: 'sweep', benchmark: 'strategies', map_reduce: 'fan_out' };
const hasTypeField = (spec: ValidSubmit): boolean => {
  const needed = TYPE_FIELD[spec.type];
  return needed === undefined || spec[needed] !== undefined;
};

function fieldProblems(spec: ValidSubmit): Problem[] {
  const problems: Problem[] = [];
  const given = spec as unknown as Payload;
  for (const [field, types] of Object.entries(FIELD_TYPES)) {
    if (given[field] === undefined || types.includes(spec.type)) continue;
    const hint = field === 'objective' && spec.type === 'sweep' ? '; a sweep takes its objective in sweep.objective' : '';
    problems.push({ path: `/${field}`, message: `is only used by type ${types.map((t) => `"${t}"`).join(' or ')}, not "${spec.type}"${hint}` });
  }
  const needed = TYPE_FIELD[spec.type];
  if (needed && spec[needed] === undefined) problems.push({ path: `/${needed}`, message: `is required for type "${spec.type}"` });
  if (spec.batch_size !== undefined && spec.fan_out === undefined) {
    problems.push({ path: '/batch_size', message: 'only applies with fan_out; add fan_out or remove batch_size' });
  }
  for (const name of Object.keys(spec.env ?? {})) {
    if (name.startsWith('COMPUTALOT_')) problems.push({ path: pointer('env', name), message: 'is reserved: COMPUTALOT_* variables belong to the runner protocol' });
  }
  if ((spec.requirements?.gpu_count ?? 0) > 0 && spec.profile !== 'gpu') {
    problems.push({ path: '/requirements/gpu_count', message: 'is above 0, which needs "profile": "gpu"' });
  }
  return problems.concat(sizeProblems(spec));
}

const kib = (chars: number) => `${Math.ceil(chars / 1024)} KiB`;

/** The env, the commands, meta and variant over their limits (above), each at its path. */
function sizeProblems(spec: ValidSubmit): Problem[] {
  const problems: Problem[] = [];
  const env = Object.entries(spec.env ?? {}).reduce((n, [name, value]) => n + name.length + value.length + 2, 0);
  if (env > MAX_ENV_CHARS) {
    problems.push({ path: '/env', message: `comes to ${kib(env)} of names and values, over ${kib(MAX_ENV_CHARS)} (a task's environment and command line must fit the kernel's limit); pass large values in the payload` });
  }
  const commands: Array<[string, string[] | undefined]> = [['/runner_command', spec.runner_command], ['/reduce/runner_command', spec.reduce?.runner_command],
    ...Object.entries(spec.strategies ?? {}).map(([name, s]): [string, string[] | undefined] => [`${pointer('strategies', name)}/runner_command`, s.runner_command])];
  for (const [path, command] of commands) {
    const chars = command?.reduce((n, arg) => n + arg.length + 1, 0) ?? 0;
    if (chars > MAX_COMMAND_CHARS) problems.push({ path, message: `comes to ${kib(chars)}, over ${kib(MAX_COMMAND_CHARS)} (the kernel's limit on a command line); pass large values in the payload` });
  }
  for (const field of ['meta', 'variant'] as const) {
    if (spec[field] === undefined) continue;
    const chars = JSON.stringify(spec[field]).length;
    if (chars > MAX_ECHOED_CHARS) {
      problems.push({ path: `/${field}`, message: `is ${kib(chars)} as JSON, over ${kib(MAX_ECHOED_CHARS)}: it is echoed in every listing and result of the job; keep large data in KV and put its key here` });
    }
  }
  return problems;
}

/** The array a fan-out walks, or a problem at the path that must hold it. */
function fanOutSource(spec: ValidSubmit): { values: unknown[] } | Problem {
  const fan = spec.fan_out!;
  if (fan.items !== undefined) {
    return fan.items.length > 0 ? { values: fan.items } : { path: '/fan_out/items', message: 'must not be empty: a job needs at least one task' };
  }
  const key = fan.by!;
  const path = pointer('payload', key);
  const values = spec.payload[key];
  if (values === undefined) return { path, message: `is required: fan_out.by names "${key}", so payload.${key} must be an array` };
  if (!Array.isArray(values)) return { path, message: `must be an array, because fan_out.by names "${key}"` };
  return values.length > 0 ? { values } : { path, message: 'must not be empty: a job needs at least one task' };
}

const isProblem = (value: object): value is Problem => 'message' in value;

/** Tasks the job will have (reduce included), and where the count comes from; fan-out problems instead. */
function countTasks(spec: ValidSubmit): { count: number; path: string } | Problem {
  if (spec.type === 'sweep') {
    const lengths = Object.values(spec.sweep!.parameters).map((values) => values.length);
    return { count: lengths.reduce((a, b) => Math.min(a * b, Number.MAX_SAFE_INTEGER), 1), path: '/sweep/parameters' };
  }
  if (spec.type === 'benchmark') {
    return { count: Object.keys(spec.strategies!).length * (spec.repeats ?? 1), path: '/strategies' };
  }
  if (!spec.fan_out) return { count: 1, path: '' };
  const source = fanOutSource(spec);
  if (isProblem(source)) return source;
  const size = spec.batch_size ?? 1;
  const path = spec.fan_out.by !== undefined ? pointer('payload', spec.fan_out.by) : '/fan_out/items';
  return { count: Math.ceil(source.values.length / size) + (spec.type === 'map_reduce' ? 1 : 0), path };
}

function commandProblem(spec: ValidSubmit, jobCommand: string[] | null): Problem | null {
  if (jobCommand) return null;
  const message = 'is required: neither the job nor the manifest\'s entrypoint.command names a command';
  if (spec.type !== 'benchmark') return { path: '/runner_command', message };
  const bare = Object.entries(spec.strategies!).filter(([, s]) => !s.runner_command).map(([name]) => `"${name}"`);
  return bare.length === 0 ? null : { path: '/runner_command', message: `${message}, and strategies ${bare.join(', ')} name none either` };
}

function fanOutTasks(spec: ValidSubmit, kind: 'task' | 'map', command: string[], values: unknown[]): PlannedTask[] {
  const key = spec.fan_out!.by;
  const size = spec.batch_size;
  const count = size === undefined ? values.length : Math.ceil(values.length / size);
  const tasks = new Array<PlannedTask>(count);
  for (let index = 0; index < count; index += 1) {
    const item = size === undefined ? values[index] : values.slice(index * size, (index + 1) * size);
    const payload = key !== undefined ? { ...spec.payload, [key]: item } : { ...spec.payload, [size === undefined ? 'item' : 'items']: item };
    tasks[index] = { index, kind, payload, item, runner_command: command };
  }
  return tasks;
}

function sweepTasks(spec: ValidSubmit, command: string[], count: number): PlannedTask[] {
  const entries = Object.entries(spec.sweep!.parameters);
  const digits = entries.map(() => 0);
  const tasks = new Array<PlannedTask>(count);
  for (let index = 0; index < count; index += 1) {
    const params: Payload = {};
    entries.forEach(([name, values], p) => { params[name] = values[digits[p]!]; });
    tasks[index] = { index, kind: 'task', payload: { ...spec.payload, params }, item: params, params, runner_command: command };
    // odometer step: the last parameter turns fastest
    for (let p = entries.length - 1; p >= 0; p -= 1) {
      digits[p] = (digits[p]! + 1) % entries[p]![1].length;
      if (digits[p] !== 0) break;
    }
  }
  return tasks;
}

function benchmarkTasks(spec: ValidSubmit, jobCommand: string[] | null): PlannedTask[] {
  const strategies = Object.entries(spec.strategies!);
  const tasks: PlannedTask[] = [];
  for (let repeat = 0; repeat < (spec.repeats ?? 1); repeat += 1) {
    for (const [strategy, s] of strategies) {
      tasks.push({
        index: tasks.length, kind: 'task', item: { strategy, repeat }, strategy, repeat,
        payload: { ...spec.payload, ...s.payload, strategy, repeat },
        runner_command: s.runner_command ?? jobCommand!,
      });
    }
  }
  return tasks;
}

export function planJob(spec: ValidSubmit, ctx: PlanContext): JobPlan {
  const jobCommand = spec.runner_command ?? (ctx.entrypoint && ctx.entrypoint.length > 0 ? [...ctx.entrypoint] : null);
  const problems = fieldProblems(spec);
  const command = commandProblem(spec, jobCommand);
  if (command) problems.push(command);
  // Counting needs the type's own field; when it is missing, that is already a problem above.
  const counted = hasTypeField(spec) ? countTasks(spec) : null;
  if (counted && isProblem(counted)) problems.push(counted);
  else if (counted && counted.count > MAX_TASKS_PER_JOB) {
    const count = counted.count >= Number.MAX_SAFE_INTEGER ? 'more than 2^53' : counted.count.toLocaleString('en-US');
    problems.push({ path: counted.path, message: `would make ${count} tasks; a job may have at most 100,000 (split it into several jobs, or use batch_size)` });
  }
  if (problems.length > 0 || !counted || isProblem(counted)) throw validationFailed(problems);
  checkPayloadTotal(spec, counted.count);
  const objective = (spec.type === 'sweep' ? spec.sweep?.objective : spec.type === 'benchmark' ? spec.objective : undefined) ?? null;
  const plan = (tasks: PlannedTask[], reduce: ReducePlan | null = null): JobPlan =>
    ({ type: spec.type, runnerCommand: jobCommand, tasks, reduce, objective, tasksTotal: tasks.length + (reduce ? 1 : 0) });
  if (spec.type === 'sweep') return plan(sweepTasks(spec, jobCommand!, counted.count));
  if (spec.type === 'benchmark') return plan(benchmarkTasks(spec, jobCommand));
  if (!spec.fan_out) return plan([{ index: 0, kind: 'task', payload: { ...spec.payload }, item: null, runner_command: jobCommand! }]);
  const values = (fanOutSource(spec) as { values: unknown[] }).values;
  if (spec.type !== 'map_reduce') return plan(fanOutTasks(spec, 'task', jobCommand!, values));
  const maps = fanOutTasks(spec, 'map', jobCommand!, values);
  // The reduce sees the job's payload without the fanned-out array (each map task already had its part).
  const base: Payload = { ...spec.payload };
  if (spec.fan_out.by !== undefined) delete base[spec.fan_out.by];
  const reduce = spec.reduce ?? {};
  return plan(maps, { index: maps.length, runner_command: reduce.runner_command ?? jobCommand!, payload: { ...base, ...reduce.payload } });
}

/**
 * Refuses (413 job_too_large) a job whose tasks' payload copies would pass MAX_JOB_PAYLOAD_BYTES, before
 * any is built. An estimate in UTF-16 units: the payload each task shares (the fanned-out array aside:
 * its elements are split among the tasks, and it is bounded by the body) times the tasks. A one-task
 * job is bounded by the body alone.
 */
function checkPayloadTotal(spec: ValidSubmit, tasks: number): void {
  if (tasks <= 1) return;
  const shared: Payload = { ...spec.payload };
  if (spec.fan_out?.by !== undefined) delete shared[spec.fan_out.by];
  const base = JSON.stringify(shared).length;
  let total = base * tasks;
  if (spec.type === 'benchmark') {
    const repeats = spec.repeats ?? 1;
    total = Object.values(spec.strategies!).reduce((sum, s) => sum + (base + (s.payload ? JSON.stringify(s.payload).length : 0)) * repeats, 0);
  }
  if (total <= MAX_JOB_PAYLOAD_BYTES) return;
  const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
  throw new AppError('job_too_large', {
    size: mib(total), limit: mib(MAX_JOB_PAYLOAD_BYTES), tasks: tasks.toLocaleString('en-US'), per_task: mib(Math.round(total / tasks)),
  }, { path: '/payload', estimated_bytes: total, limit_bytes: MAX_JOB_PAYLOAD_BYTES });
}

/**
 * The reduce task's payload: its base plus `results`, the map results in task order. A map task that did
 * not complete contributes null, so `results[i]` always belongs to map task i.
 */
export function reducePayload(
  reduce: Pick<ReducePlan, 'payload'>,
  mapResults: ReadonlyArray<{ index: number; result: unknown; status?: string }>,
): Payload {
  const ordered = [...mapResults].sort((a, b) => a.index - b.index);
  const results = ordered.map((m) => (m.status === undefined || m.status === 'completed' ? (m.result ?? null) : null));
  return { ...reduce.payload, results };
}
