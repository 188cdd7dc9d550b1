/**
 * What a worker on this machine offers against jobs' `requirements` (SPEC §6, core/worker-fit.ts): its
 * CPUs, memory, free disk under the data directory, and GPUs. Reported at registration and carried by
 * each lease request, whose lease then takes only tasks whose minimums it meets.
 *
 * Free disk is read once, at start: a minimum is about the machine a task lands on, not a reservation.
 * GPUs: none are detected; embedded workers have the `cpu` profile, and a job with gpu_count above 0
 * needs the `gpu` profile (job-plan.ts).
 */
import { statfsSync } from 'node:fs';
import { availableParallelism, totalmem } from 'node:os';
import type { Capacity } from '../core/worker-fit.js';

const GIB = 2 ** 30;

export function machineCapacity(dataDir: string): Capacity {
  const capacity: Capacity = { cpu: availableParallelism(), memory_gb: totalmem() / GIB, gpu_count: 0 };
  try {
    const fs = statfsSync(dataDir);
    capacity.storage_gb = (fs.bavail * fs.bsize) / GIB;
  } catch {
    // No statfs here (or no data directory yet): storage stays unknown, which never refuses a task.
  }
  return capacity;
}
