/**
 * State machines as data. Each machine is an `as const` list of states and a transition table; the store
 * turns every transition into `UPDATE … WHERE id = ? AND status IN (<allowed from>)`, so the database
 * enforces the same machine and two actors can never both make one transition.
 *
 * Prepared runtime (one per worker × project × content_hash):
 *
 *        init / job            build ok, checks ok
 *   cold ──────────▶ initializing ──────────▶ warm
 *     ▲                  │                     │
 *     │                  ▼ a phase fails       │ invalidate / idle drop
 *     └──── retry ──── failed                  ▼
 *     └──────────────────────────────────── stale
 *
 * Job:      queued ─▶ running ─▶ completed | partial | failed | cancelled   (queued ─▶ cancelled too)
 * Task:     queued ─▶ preparing ─▶ running ─▶ completed | failed | cancelled; a retry goes back to queued
 *           (queued ─▶ failed: queue timeout; preparing ─▶ completed | failed: the attempt ended before its
 *           start was recorded, or never started)
 * Worker:   online ─▶ draining ─▶ offline; online ─▶ offline when its heartbeats stop
 */

export const RUNTIME_STATES = ['cold', 'initializing', 'warm', 'failed', 'stale'] as const;
export type RuntimeState = (typeof RUNTIME_STATES)[number];
export const RUNTIME_PHASES = ['fetch', 'build', 'validate', 'init', 'services'] as const;
export type RuntimePhase = (typeof RUNTIME_PHASES)[number];

export const RUNTIME_TRANSITIONS: Record<RuntimeState, readonly RuntimeState[]> = {
  cold: ['initializing', 'stale'],
  initializing: ['warm', 'failed', 'stale'],
  warm: ['stale'],
  failed: ['cold', 'initializing', 'stale'],
  stale: ['cold', 'initializing'],
};

export const JOB_STATES = ['queued', 'running', 'completed', 'partial', 'failed', 'cancelled'] as const;
export type JobState = (typeof JOB_STATES)[number];
export const JOB_ACTIVE_STATES = ['queued', 'running'] as const satisfies readonly JobState[];

export const JOB_TRANSITIONS: Record<JobState, readonly JobState[]> = {
  queued: ['running', 'completed', 'partial', 'failed', 'cancelled'],
  running: ['completed', 'partial', 'failed', 'cancelled'],
  completed: [],
  partial: [],
  failed: [],
  cancelled: [],
};

export const TASK_STATES = ['queued', 'preparing', 'running', 'completed', 'failed', 'cancelled'] as const;
export type TaskState = (typeof TASK_STATES)[number];
/** Tasks that hold a lease (a worker's slot, or held for one): what the running_tasks quota counts. */
export const TASK_LEASED_STATES = ['preparing', 'running'] as const satisfies readonly TaskState[];

export const TASK_TRANSITIONS: Record<TaskState, readonly TaskState[]> = {
  queued: ['preparing', 'failed', 'cancelled'],
  preparing: ['running', 'queued', 'completed', 'failed', 'cancelled'],
  running: ['completed', 'failed', 'queued', 'cancelled'],
  completed: [],
  failed: [],
  cancelled: [],
};

export const WORKER_STATES = ['online', 'draining', 'offline'] as const;
export type WorkerState = (typeof WORKER_STATES)[number];

export const WORKER_TRANSITIONS: Record<WorkerState, readonly WorkerState[]> = {
  online: ['draining', 'offline'],
  draining: ['offline'],
  offline: ['online'],
};

/** The states a transition to `to` may start from: the `IN (…)` list of the guarding UPDATE. */
export function allowedFrom<S extends string>(table: Record<S, readonly S[]>, to: S): S[] {
  return (Object.keys(table) as S[]).filter((from) => table[from].includes(to));
}
