/**
 * Server configuration from the environment (the README's configuration table lists every variable).
 * A bad value stops the server at start with a message naming the variable, never later.
 */
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';

export interface Config {
  host: string;
  port: number;
  dataDir: string;
  databaseUrl: string | null;
  localWorkers: number;
  workerSlots: number;
  /** Most tasks a worker holds leased beyond its slots while tasks are short (worker/agent.ts). */
  workerPrefetch: number;
  heartbeatMs: number;
  leaseSeconds: number;
  runtime: 'auto' | 'oci' | 'process';
  /** The process runtime puts each task in a cgroup of its own where it can (`auto`), or never (`off`). */
  taskCgroups: 'auto' | 'off';
  adminToken: string | null;
  allowRunc: boolean;
  maxPushBytes: number;
  maxExpandedBytes: number;
  maxTarballEntries: number;
  keepRevisions: number;
  warmIdleSeconds: number;
  podman: string;
  runsc: string;
  buildNetwork: string;
  minFreeDiskMb: number;
  buildTimeoutS: number;
  sseHeartbeatMs: number;
  eventRetentionSeconds: number;
  kvMaxKeys: number;
  kvMaxValueBytes: number;
  logLevel: string;
}

type Env = Record<string, string | undefined>;

function int(env: Env, name: string, fallback: number, min = 0): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) {
    throw new Error(`${name}=${raw} is not an integer >= ${min}; unset it to use the default ${fallback}`);
  }
  return value;
}

function oneOf<T extends string>(env: Env, name: string, allowed: readonly T[], fallback: T): T {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!(allowed as readonly string[]).includes(raw)) {
    throw new Error(`${name}=${raw} must be one of ${allowed.join(', ')}`);
  }
  return raw as T;
}

const MiB = 1024 * 1024;

export function loadConfig(env: Env = process.env): Config {
  return {
    host: env.HOST || '127.0.0.1',
    port: int(env, 'PORT', 8080),
    dataDir: resolve(env.COMPUTALOT_DATA_DIR || './.computalot'),
    databaseUrl: env.DATABASE_URL || null,
    localWorkers: int(env, 'COMPUTALOT_LOCAL_WORKERS', 1),
    workerSlots: int(env, 'COMPUTALOT_WORKER_SLOTS', availableParallelism(), 1),
    workerPrefetch: int(env, 'COMPUTALOT_WORKER_PREFETCH', 8 * int(env, 'COMPUTALOT_WORKER_SLOTS', availableParallelism(), 1), 0),
    leaseSeconds: int(env, 'COMPUTALOT_LEASE_S', 30, 1),
    // Three heartbeats per lease (SPEC §8: 30 s leases, 10 s heartbeats), however the lease is set.
    heartbeatMs: int(env, 'COMPUTALOT_HEARTBEAT_MS', Math.min(10_000, Math.floor((int(env, 'COMPUTALOT_LEASE_S', 30, 1) * 1000) / 3)), 100),
    runtime: oneOf(env, 'COMPUTALOT_RUNTIME', ['auto', 'oci', 'process'] as const, 'auto'),
    taskCgroups: oneOf(env, 'COMPUTALOT_TASK_CGROUPS', ['auto', 'off'] as const, 'auto'),
    adminToken: env.COMPUTALOT_ADMIN_TOKEN || null,
    allowRunc: env.COMPUTALOT_ALLOW_RUNC === '1',
    maxPushBytes: int(env, 'COMPUTALOT_MAX_PUSH_BYTES', 512 * MiB, 1),
    maxExpandedBytes: int(env, 'COMPUTALOT_MAX_EXPANDED_BYTES', 4096 * MiB, 1),
    maxTarballEntries: int(env, 'COMPUTALOT_MAX_TARBALL_ENTRIES', 100_000, 1),
    keepRevisions: int(env, 'COMPUTALOT_KEEP_REVISIONS', 10, 1),
    warmIdleSeconds: int(env, 'COMPUTALOT_WARM_IDLE_S', 600, 1),
    podman: env.COMPUTALOT_PODMAN || 'podman',
    runsc: env.COMPUTALOT_RUNSC || '/usr/bin/runsc',
    buildNetwork: env.COMPUTALOT_BUILD_NETWORK || 'none',
    minFreeDiskMb: int(env, 'COMPUTALOT_MIN_FREE_DISK_MB', 2048, 0),
    buildTimeoutS: int(env, 'COMPUTALOT_BUILD_TIMEOUT_S', 1800, 1),
    sseHeartbeatMs: int(env, 'COMPUTALOT_SSE_HEARTBEAT_MS', 15_000, 10),
    eventRetentionSeconds: int(env, 'COMPUTALOT_EVENT_RETENTION_S', 7 * 24 * 3600, 1),
    kvMaxKeys: int(env, 'COMPUTALOT_KV_MAX_KEYS', 10_000, 1),
    kvMaxValueBytes: int(env, 'COMPUTALOT_KV_MAX_VALUE_BYTES', MiB, 1),
    logLevel: env.LOG_LEVEL || 'info',
  };
}
