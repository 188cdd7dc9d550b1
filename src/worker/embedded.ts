/**
 * Embedded workers (SPEC §1 COMPUTALOT_LOCAL_WORKERS): agents in the server process, on the in-process
 * transport, sharing one runtime (so a revision is unpacked once on this machine) while each keeps its own
 * readiness record and slots.
 */
import { join } from 'node:path';
import type { FastifyBaseLogger } from 'fastify';
import type { Runtime } from '../runtime/port.js';
import type { BlobStore } from '../store/blob-store.js';
import type { LeasedTask } from '../core/model.js';
import type { LeaseRequest, Store } from '../store/port.js';
import { WorkerAgent } from './agent.js';
import { machineCapacity } from './capacity.js';
import { InProcessClient } from './in-process-client.js';

export interface DirectSlots {
  requests: LeaseRequest[];
  /** Hands each request's leased tasks to its worker (empty arrays free the promised slots). */
  accept(leased: LeasedTask[][]): void;
}

export interface EmbeddedWorkers {
  agents: WorkerAgent[];
  nudge(): void;
  /** Promises free slots of embedded workers to one submit (direct dispatch), or null when none is free. */
  reserve(profile: string, tasks: number): DirectSlots | null;
  stop(): Promise<void>;
}

export async function startEmbeddedWorkers(opts: {
  count: number; slots: number; prefetch?: number; store: Store; blobs: BlobStore; dataDir: string; runtime: Runtime; log: FastifyBaseLogger;
  heartbeatMs?: number;
}): Promise<EmbeddedWorkers> {
  const client = new InProcessClient(opts.store, opts.blobs, opts.dataDir);
  const agents: WorkerAgent[] = [];
  // The first attempt should not wait for the helper's compile and start (~0.4 s of cc; over 1 s on a
  // loaded machine, which once made a test's first task miss its prefetch window).
  if (opts.count > 0) opts.runtime.warmUp?.();
  const capacity = machineCapacity(opts.dataDir);
  for (let i = 0; i < opts.count; i += 1) {
    const agent = new WorkerAgent(client, opts.runtime, {
      slots: opts.slots, profile: 'cpu', capacity, workDir: join(opts.dataDir, 'work'), embedded: true, log: opts.log,
      ...(opts.prefetch !== undefined ? { prefetch: opts.prefetch } : {}),
      ...(opts.heartbeatMs ? { heartbeatMs: opts.heartbeatMs } : {}),
    });
    await agent.start();
    agents.push(agent);
  }
  return {
    agents,
    nudge: () => { for (const a of agents) a.beatSoon(); },
    reserve(profile, tasks) {
      const picked: Array<{ agent: WorkerAgent; request: LeaseRequest }> = [];
      let left = tasks;
      for (const agent of agents) {
        if (left <= 0) break;
        const request = agent.reserve(profile, left);
        if (!request) continue;
        picked.push({ agent, request });
        left -= request.slots;
      }
      if (picked.length === 0) return null;
      return {
        requests: picked.map((p) => p.request),
        accept(leased) {
          picked.forEach((p, i) => p.agent.acceptDirect(p.request.slots, leased[i] ?? []));
        },
      };
    },
    async stop() {
      await Promise.all(agents.map((a) => a.stop()));
      await opts.runtime.close();
    },
  };
}
