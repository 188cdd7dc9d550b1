/**
 * Starts everything `npm start` serves: store, blob files, admin bootstrap, HTTP API, housekeeping.
 * SIGTERM/SIGINT: stop taking requests (503), end streams, let in-flight requests finish, close the store.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { buildApp } from './api/app.js';
import { Authenticator } from './api/auth.js';
import type { Config } from './config.js';
import { startHousekeeping } from './scheduler/housekeeping.js';
import { startJobSweeper } from './scheduler/job-sweeper.js';
import { ProcessRuntime } from './runtime/process-runtime.js';
import { OciRuntime } from './runtime/oci/oci-runtime.js';
import { startEmbeddedWorkers, type EmbeddedWorkers } from './worker/embedded.js';
import { bootstrapAdmin } from './services/bootstrap.js';
import type { Deps } from './services/deps.js';
import { detectRuntime } from './services/runtime-info.js';
import { BlobStore } from './store/blob-store.js';
import { openStore } from './store/sql-store.js';

const SHUTDOWN_GRACE_MS = 10_000;

export interface RunningServer {
  url: string;
  deps: Deps;
  stop(): Promise<void>;
}

export async function startServer(config: Config, opts: { logger?: boolean | object } = {}): Promise<RunningServer> {
  await mkdir(config.dataDir, { recursive: true });
  const store = await openStore({ databaseUrl: config.databaseUrl, sqlitePath: join(config.dataDir, 'computalot.db'), leaseSeconds: config.leaseSeconds });
  const blobs = new BlobStore(config.dataDir);
  await blobs.init();
  const runtime = await detectRuntime(config.runtime, { podman: config.podman, runsc: config.runsc });
  const logger = opts.logger ?? { level: config.logLevel, redact: ['req.headers.authorization'] };
  let embedded: EmbeddedWorkers | null = null;
  const deps: Deps = {
    config, store, blobs, auth: new Authenticator(store), runtime, log: undefined as never,
    nudgeWorkers: () => embedded?.nudge(),
    reserveSlots: (profile, tasks) => embedded?.reserve(profile, tasks) ?? null,
  };
  const { app, beginShutdown } = await buildApp(deps, { logger });
  deps.log = app.log;
  if (runtime.warning) app.log.warn(runtime.warning);

  const { created } = await bootstrapAdmin(store, { adminToken: config.adminToken, dataDir: config.dataDir });
  if (created) {
    // Printed once, on purpose, to stdout only: this is how the operator learns the first admin key.
    process.stdout.write(`\nAdmin API key (shown once; also saved to ${join(config.dataDir, 'admin-token')}):\n  ${created}\n\n`);
  }
  const stopHousekeeping = startHousekeeping(store, { eventRetentionSeconds: config.eventRetentionSeconds, log: app.log });
  const stopSweeper = startJobSweeper(store, { log: app.log });
  if (config.localWorkers > 0) {
    embedded = await startEmbeddedWorkers({
      count: config.localWorkers, slots: config.workerSlots, prefetch: config.workerPrefetch, store, blobs, dataDir: config.dataDir, log: app.log,
      runtime: runtime.kind === 'oci'
        ? new OciRuntime({
          engine: { podman: config.podman, runsc: config.runsc }, allowRunc: config.allowRunc, warmIdleS: config.warmIdleSeconds,
          minFreeDiskMb: config.minFreeDiskMb, buildNetwork: config.buildNetwork, buildTimeoutS: config.buildTimeoutS,
          // Embedded workers share the runtime, hence each warm sandbox: it may run all their slots at once.
          slots: config.workerSlots * config.localWorkers,
        })
        : new ProcessRuntime({
          helperDir: join(config.dataDir, 'work'),
          taskCgroups: config.taskCgroups === 'auto',
          onTreeMode: (mode) => app.log.info(mode === 'cgroup'
            ? 'process runtime: each task runs in a cgroup of its own (its whole process tree is killed with cgroup.kill)'
            : `process runtime: each task runs under an anchor process (${config.taskCgroups === 'off' ? 'COMPUTALOT_TASK_CGROUPS=off' : 'task cgroups are not usable here: they need a writable cgroup v2, as root or in a delegated subtree, and Linux 5.14 or later'})`),
          onFallback: (why) => app.log.warn(`tasks are forked by the Node spawner process instead of the helper: ${why}`),
        }),
      heartbeatMs: config.heartbeatMs,
    });
  }
  const address = await app.listen({ host: config.host, port: config.port });
  const url = address.replace('[::1]', 'localhost');
  process.stdout.write(`computalot listening on ${url} (store: ${store.dialect}, runtime: ${runtime.kind}, embedded workers: ${config.localWorkers})\n`);

  let stopping: Promise<void> | null = null;
  return {
    url,
    deps,
    stop() {
      stopping ??= (async () => {
        beginShutdown();
        stopHousekeeping();
        stopSweeper();
        // Workers first: their attempts are handed back (no attempt spent) while the store is still open.
        await embedded?.stop();
        // Requests in flight get a grace period; a connection that never sends a whole request would
        // otherwise hold close() forever (Node stops its header timeouts once the server closes).
        const grace = setTimeout(() => app.server.closeAllConnections(), SHUTDOWN_GRACE_MS);
        await app.close();
        clearTimeout(grace);
        await store.close();
      })();
      return stopping;
    },
  };
}
