/**
 * Jobs, tasks and results (SPEC §6): the submit body, the batch body, and the answers. Public field names
 * match Computalot's letter for letter; fields marked "ours" are this server's additions.
 *
 * Invariants:
 * - `SubmitJobBody` refuses unknown keys at the top and in every object it defines (a typo such as
 *   `timeout` or `retries.max_attempt` would otherwise be silently ignored); `payload`, `meta`, `variant`
 *   and `fan_out.items` are the user's own JSON and are never inspected here.
 * - Defaults live in the schema (`default`), so Ajv (`useDefaults`) and `validateSubmit` fill the same ones.
 * - Rules across fields (sweep needs `sweep`, `fan_out.by` names an array in `payload`, task limits, the
 *   runner command) are core/job-plan.ts's; they report problems with the same JSON paths.
 * - `BatchSubmitBody` accepts any items: each is validated on its own with `validateSubmit`, so one bad job
 *   never fails its neighbours (SPEC: "each job on its own").
 * - Result, payload and meta values are `Unknown`: they are whatever JSON the user's code produced.
 */
import { Type, type Static } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { Value, ValueErrorType, type ValueError } from '@sinclair/typebox/value';
import type { Problem } from '../core/errors.js';
import { JOB_STATES, TASK_STATES } from '../core/states.js';
import { Nullable } from './common.js';
import { defaultsFiller } from './defaults.js';

const literals = <T extends string>(values: readonly T[], options: object = {}) =>
  Type.Union(values.map((value) => Type.Literal(value)), options);

export const JOB_TYPES = ['structured_runner', 'sweep', 'map_reduce', 'benchmark'] as const;
export type JobType = (typeof JOB_TYPES)[number];

const Strict = { additionalProperties: false } as const;
/**
 * One argument or env value: what the kernel takes (execve refuses a NUL, and a string over 128 KiB with
 * E2BIG: 32 Ki characters are at most 96 KiB of UTF-8). Refused here, not after three failed attempts.
 */
export const MAX_ARG_CHARS = 32 * 1024;
const ArgString = (minLength: number) => Type.String({
  minLength, maxLength: MAX_ARG_CHARS, pattern: '^[^\\u0000]*$', description: 'a string without NUL characters',
});
const Command = Type.Array(ArgString(1), { minItems: 1, description: 'a non-empty array of non-empty strings' });
const JsonObject = Type.Record(Type.String(), Type.Unknown(), { description: 'a JSON object' });

export const Objective = Type.Object({
  key: Type.String({ minLength: 1, description: 'the key of the result to rank by' }),
  goal: literals(['maximize', 'minimize']),
}, Strict);
export type ObjectiveSpec = Static<typeof Objective>;

const EnvMap = Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }), ArgString(0), {
  additionalProperties: false,
  description: 'an object of variables: names of letters, digits and "_", not starting with a digit; string values',
});

export const SubmitJobBody = Type.Object({
  type: Type.Optional(literals(JOB_TYPES, { default: 'structured_runner' })),
  project: Type.String({ minLength: 1, description: 'the project name' }),
  runner_command: Type.Optional(Command),
  payload: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { default: {}, description: 'a JSON object' })),
  timeout_s: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400, default: 600 })),
  fan_out: Type.Optional(Type.Object({
    by: Type.Optional(Type.String({ minLength: 1, description: 'a key of payload that holds an array' })),
    items: Type.Optional(Type.Array(Type.Unknown())),
  }, { ...Strict, minProperties: 1, maxProperties: 1, description: 'exactly one of {"by": "key"} or {"items": [...]}' })),
  batch_size: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000 })),
  profile: Type.Optional(literals(['cpu', 'gpu'], { default: 'cpu' })),
  requirements: Type.Optional(Type.Object({
    cpu: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
    memory_gb: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
    gpu_count: Type.Optional(Type.Integer({ minimum: 0 })),
    storage_gb: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
  }, Strict)),
  retries: Type.Optional(Type.Object({
    max_attempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 20, default: 3 })),
    backoff_s: Type.Optional(Type.Number({ minimum: 0, maximum: 3600, default: 2 })),
  }, { ...Strict, default: {} })),
  queue_timeout_s: Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: 604_800 }))),
  checkpoint: Type.Optional(Type.Object({ enabled: Type.Boolean() }, Strict)),
  idempotency_key: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  priority: Type.Optional(Type.Integer({ minimum: -100, maximum: 100, default: 0 })),
  env: Type.Optional(EnvMap),
  meta: Type.Optional(Type.Unknown()),
  variant: Type.Optional(Type.Unknown()),
  sweep: Type.Optional(Type.Object({
    parameters: Type.Record(Type.String(), Type.Array(Type.Unknown(), { minItems: 1, description: 'a non-empty array of values' }), {
      minProperties: 1, description: 'an object of at least one parameter, each a non-empty array of values',
    }),
    objective: Type.Optional(Objective),
  }, Strict)),
  reduce: Type.Optional(Type.Object({ runner_command: Type.Optional(Command), payload: Type.Optional(JsonObject) }, Strict)),
  strategies: Type.Optional(Type.Record(
    // A pattern, not minLength: TypeBox checks a record's keys by pattern only.
    Type.String({ pattern: '^.+$' }),
    Type.Object({ payload: Type.Optional(JsonObject), runner_command: Type.Optional(Command) }, Strict),
    { additionalProperties: false, minProperties: 1, description: 'an object of at least one strategy, each under a non-empty name' },
  )),
  // No schema default: a default would put `repeats` on every job type, and it only belongs to benchmark.
  repeats: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'runs per strategy (benchmark; 1 when absent)' })),
  objective: Type.Optional(Objective),
}, { ...Strict, $id: 'SubmitJobBody', description: 'a JSON object: a job submission (SPEC §6)' });

export type SubmitJob = Static<typeof SubmitJobBody>;
/** A submit body after `validateSubmit`: the fields with defaults are present. */
export type ValidSubmit = SubmitJob & {
  type: JobType; payload: Record<string, unknown>; timeout_s: number; profile: 'cpu' | 'gpu'; priority: number;
  retries: { max_attempts: number; backoff_s: number };
};

export const BatchSubmitBody = Type.Object({
  jobs: Type.Array(Type.Unknown(), { minItems: 1, maxItems: 1000, description: '1 to 1,000 submit bodies' }),
}, Strict);

const ErrorInfo = Type.Object({ code: Type.String(), message: Type.String() });
const ErrorWithDetails = Type.Object({
  code: Type.String(), message: Type.String(), details: Type.Record(Type.String(), Type.Unknown()),
});

export const BatchSubmitResult = Type.Object({
  jobs: Type.Array(Type.Union([
    Type.Object({ index: Type.Integer(), id: Type.String() }),
    Type.Object({ index: Type.Integer(), error: ErrorWithDetails }),
  ])),
});

const compiled = TypeCompiler.Compile(SubmitJobBody);
const withDefaults = defaultsFiller(SubmitJobBody);

const range = (schema: Record<string, unknown>): string => {
  const min = schema.minimum ?? schema.exclusiveMinimum;
  const above = schema.exclusiveMinimum !== undefined ? 'above' : 'at least';
  if (min !== undefined && schema.maximum !== undefined) return `must be between ${String(min)} and ${String(schema.maximum)}`;
  return min !== undefined ? `must be ${above} ${String(min)}` : `must be at most ${String(schema.maximum)}`;
};

const describeOption = (option: Record<string, unknown>): string => {
  if (option.type === 'null') return 'null';
  const bounded = option.minimum !== undefined || option.maximum !== undefined;
  return `${option.type === 'integer' ? 'an integer' : `a ${String(option.type)}`}${bounded ? ` ${range(option).replace(/^must be /, '')}` : ''}`;
};

/** A message fragment that reads after the path: "/timeout_s must be between 1 and 86400". */
function describeValueError(error: ValueError): string {
  const schema = error.schema as Record<string, unknown>;
  const about = typeof schema.description === 'string' ? schema.description : null;
  switch (error.type) {
    case ValueErrorType.ObjectRequiredProperty: return 'is required';
    case ValueErrorType.ObjectAdditionalProperties:
      if (error.path.lastIndexOf('/') === 0) return 'is not a field of a job submission (SPEC §6); remove it or check its spelling';
      return about ? `is not an allowed key (${about})` : 'is not an allowed key here; remove it or check its spelling';
    case ValueErrorType.Union: {
      const options = (schema.anyOf as Array<Record<string, unknown>> | undefined) ?? [];
      return options.every((option) => 'const' in option)
        ? `must be one of ${options.map((option) => JSON.stringify(option.const)).join(', ')}`
        : `must be ${options.map(describeOption).join(' or ')}`;
    }
    case ValueErrorType.ObjectMinProperties:
    case ValueErrorType.ObjectMaxProperties:
    case ValueErrorType.ArrayMinItems:
    case ValueErrorType.ArrayMaxItems:
      return about ? `must be ${about}` : error.message.replace(/^Expected \w+ to/, 'must');
    case ValueErrorType.NumberMinimum: case ValueErrorType.NumberMaximum:
    case ValueErrorType.NumberExclusiveMinimum:
    case ValueErrorType.IntegerMinimum: case ValueErrorType.IntegerMaximum:
    case ValueErrorType.IntegerExclusiveMinimum:
      return range(schema);
    case ValueErrorType.StringMinLength: return 'must not be empty';
    case ValueErrorType.StringMaxLength: return `must be at most ${String(schema.maxLength)} characters`;
    case ValueErrorType.StringPattern: return about ? `must be ${about}` : error.message.replace(/^Expected/, 'must be');
    case ValueErrorType.Object: return about ? `must be ${about}` : 'must be an object';
    case ValueErrorType.Array: return about ? `must be ${about}` : 'must be an array';
    case ValueErrorType.String: return 'must be a string';
    case ValueErrorType.Integer: return 'must be an integer';
    case ValueErrorType.Number: return 'must be a number';
    case ValueErrorType.Boolean: return 'must be true or false';
    default: return error.message.replace(/^Expected/, 'must be');
  }
}

export type SubmitValidation = { ok: true; value: ValidSubmit } | { ok: false; problems: Problem[] };

/** Validates one submit body; problems carry RFC 6901 paths, at most one per path. Never throws. */
export function validateSubmit(body: unknown): SubmitValidation {
  if (compiled.Check(body)) {
    return { ok: true, value: withDefaults(body as Record<string, unknown>) as ValidSubmit };
  }
  const seen = new Set<string>();
  const problems: Problem[] = [];
  for (const error of compiled.Errors(body)) {
    if (seen.has(error.path)) continue;
    seen.add(error.path);
    problems.push({ path: error.path, message: describeValueError(error) });
  }
  return { ok: false, problems };
}

const JobStatus = literals(JOB_STATES);
const TaskStatus = literals(TASK_STATES);
const Time = Nullable(Type.String({ description: 'RFC 3339 UTC' }));

export const TaskCountsObject = Type.Object({
  queued: Type.Integer(), preparing: Type.Integer(), running: Type.Integer(),
  completed: Type.Integer(), failed: Type.Integer(), cancelled: Type.Integer(),
});

export const JobObject = Type.Object({
  id: Type.String(), type: literals(JOB_TYPES), project: Type.String(), content_hash: Type.String(),
  status: JobStatus, status_reason: Nullable(Type.String()), error: Nullable(ErrorInfo),
  recommended_action: Nullable(Type.String()), created_at: Type.String(), started_at: Time, finished_at: Time,
  timeout_s: Type.Integer(), tasks_total: Type.Integer(), tasks: TaskCountsObject,
  progress: Type.Number({ minimum: 0, maximum: 1 }), meta: Type.Unknown(), variant: Type.Unknown(),
  // ours: echoed so a client can see what will run without keeping its request
  runner_command: Type.Optional(Nullable(Command)), profile: Type.Optional(Type.String()),
  priority: Type.Optional(Type.Integer()), idempotency_key: Type.Optional(Nullable(Type.String())),
}, { $id: 'Job' });

export const ProgressObject = Type.Object({ progress: Type.Number({ minimum: 0, maximum: 1 }), message: Type.Optional(Type.String()) });

export const TaskObject = Type.Object({
  id: Type.String(), index: Type.Integer(), status: TaskStatus, status_reason: Nullable(Type.String()),
  attempt: Type.Integer(),
  attempts: Type.Array(Type.Object({
    attempt: Type.Integer(), node: Nullable(Type.String()), exit_code: Nullable(Type.Integer()),
    error: Nullable(ErrorInfo), started_at: Time, finished_at: Time,
  })),
  exit_code: Nullable(Type.Integer()), error: Nullable(ErrorInfo), output: Type.String(),
  latest_progress: Nullable(ProgressObject), live_feedback: Type.Object({ output_tail: Type.String() }),
  item: Type.Unknown(), result: Type.Unknown(), result_quality: Nullable(Type.Number()),
  result_warnings: Type.Array(Type.String()), started_at: Time, finished_at: Time,
  duration_ms: Nullable(Type.Integer()),
  cold_start: Nullable(Type.Object({
    fetch_ms: Type.Integer(), build_ms: Type.Integer(), init_ms: Type.Integer(), sandbox_ms: Type.Integer(),
  })),
  node: Nullable(Type.String()),
  kind: Type.Optional(literals(['task', 'map', 'reduce'])), // ours: tells a reduce task from the map tasks
}, { $id: 'Task' });

export const ResultsObject = Type.Object({
  job_id: Type.String(), status: JobStatus, completeness: Type.Number({ minimum: 0, maximum: 1 }),
  summary: Type.Object({
    tasks_total: Type.Integer(), completed: Type.Integer(), failed: Type.Integer(), cancelled: Type.Integer(),
    duration_s: Nullable(Type.Number()),
  }),
  aggregate_result: Type.Unknown(),
  results: Type.Array(Type.Object({
    index: Type.Integer(), item: Type.Unknown(), status: TaskStatus, result: Type.Unknown(),
    result_quality: Nullable(Type.Number()), result_warnings: Type.Array(Type.String()), error: Nullable(ErrorInfo),
  })),
  meta: Type.Unknown(), variant: Type.Unknown(), result_persisted: Type.Boolean(), output_persisted: Type.Boolean(),
}, { $id: 'Results' });
