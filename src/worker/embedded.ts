/**
 * Embedded workers (SPEC §1 COMPUTALOT_LOCAL_WORKERS): agents in the server process, on the in-process
 * transport, sharing one runtime (so a revision is unpacked once on this machine) while each keeps its own
 * readiness record and slots.
 */
import { join } from 'node:path';
import type { FastifyBaseLogger } from 'fastify';
import type { Runtime } from '../runtime/port.js';
import type { BlobStore } from '../store/blob-store.js';
import type { Store } from '../store/port.js';
import { WorkerAgent } from './agent.js';
import { InProcessClient } from './in-process-client.js';

export interface EmbeddedWorkers {
  agents: WorkerAgent[];
  nudge(): void;
  stop(): Promise<void>;
}

export async function startEmbeddedWorkers(opts: {
  count: number; slots: number; store: Store; blobs: BlobStore; dataDir: string; runtime: Runtime; log: FastifyBaseLogger;
  heartbeatMs?: number;
}): Promise<EmbeddedWorkers> {
  const client = new InProcessClient(opts.store, opts.blobs, opts.dataDir);
  const agents: WorkerAgent[] = [];
  for (let i = 0; i < opts.count; i += 1) {
    const agent = new WorkerAgent(client, opts.runtime, {
      slots: opts.slots, profile: 'cpu', workDir: join(opts.dataDir, 'work'), embedded: true, log: opts.log,
      ...(opts.heartbeatMs ? { heartbeatMs: opts.heartbeatMs } : {}),
    });
    await agent.start();
    agents.push(agent);
  }
  return {
    agents,
    nudge: () => { for (const a of agents) a.beatSoon(); },
    async stop() {
      await Promise.all(agents.map((a) => a.stop()));
      await opts.runtime.close();
    },
  };
}
