/**
 * Whether a worker meets a job's `requirements` (SPEC §6: `cpu`, `memory_gb`, `gpu_count`, `storage_gb`,
 * minimums), and what to say when none does. Pure.
 *
 * A worker's capacity is what it reported at registration (embedded workers: the machine's; see
 * worker/capacity.ts). A requirement the job does not state is no constraint; a resource a worker did not
 * report (a worker registered before workers reported them) counts as unknown, and unknown never refuses.
 */

export const REQUIREMENT_KEYS = ['cpu', 'memory_gb', 'storage_gb', 'gpu_count'] as const;
export type RequirementKey = (typeof REQUIREMENT_KEYS)[number];

/** What a worker offers: each key a number, or absent when it did not say. */
export type Capacity = Partial<Record<RequirementKey, number>>;

/** A task's minimums as the tasks table keeps them (one nullable column each, null: none stated). */
export interface RequirementColumns { min_cpu: number | null; min_memory_gb: number | null; min_storage_gb: number | null; min_gpu_count: number | null }

export function requirementColumns(requirements: Record<string, unknown>): RequirementColumns {
  const value = (key: RequirementKey) => (typeof requirements[key] === 'number' ? requirements[key] as number : null);
  return { min_cpu: value('cpu'), min_memory_gb: value('memory_gb'), min_storage_gb: value('storage_gb'), min_gpu_count: value('gpu_count') };
}

/** Above any minimum, and within PostgreSQL's `real` (the columns' type; its largest is ~3.4e38). */
const UNBOUNDED = 1e30;

/**
 * The bounds a lease compares each task's minimums with: the worker's capacity, and for a resource it did
 * not report a bound no minimum reaches (unknown never refuses).
 */
export function leaseBounds(capacity: Capacity | undefined): [number, number, number, number] {
  const bound = (key: RequirementKey) => (typeof capacity?.[key] === 'number' ? capacity[key]! : UNBOUNDED);
  return [bound('cpu'), bound('memory_gb'), bound('storage_gb'), bound('gpu_count')];
}

/** The requirements `capacity` falls short of, each with what it has. */
export function unmet(requirements: Record<string, unknown>, capacity: Capacity): Array<{ key: RequirementKey; need: number; have: number }> {
  const out: Array<{ key: RequirementKey; need: number; have: number }> = [];
  for (const key of REQUIREMENT_KEYS) {
    const need = requirements[key];
    const have = capacity[key];
    if (typeof need === 'number' && typeof have === 'number' && have < need) out.push({ key, need, have });
  }
  return out;
}

/** A worker's capacity from its registration's `resources` (only numeric requirement keys count). */
export function capacityOf(resources: Record<string, unknown>): Capacity {
  const capacity: Capacity = {};
  for (const key of REQUIREMENT_KEYS) if (typeof resources[key] === 'number') capacity[key] = resources[key] as number;
  return capacity;
}

/**
 * Why queued tasks wait although workers of their profile are live: none meets the requirements. Null
 * when one does. Names each requirement no worker meets, with the most any worker has.
 */
export function requirementsReason(requirements: Record<string, unknown>, workers: Array<{ resources: Record<string, unknown> }>): string | null {
  if (workers.length === 0) return null;
  const shortfalls = workers.map((w) => unmet(requirements, capacityOf(w.resources)));
  if (shortfalls.some((s) => s.length === 0)) return null;
  const keys = REQUIREMENT_KEYS.filter((key) => shortfalls.every((s) => s.some((u) => u.key === key)));
  const parts = (keys.length > 0 ? keys : [shortfalls[0]![0]!.key]).map((key) => {
    const most = Math.max(...workers.map((w) => capacityOf(w.resources)[key] ?? 0));
    return `${key} ≥ ${requirements[key]} (the most a live worker has is ${round(most)})`;
  });
  return `waiting for a worker that meets the requirements: none of the ${workers.length} live worker(s) has ${parts.join(' and ')}`;
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}
