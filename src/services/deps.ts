/** What every use-case needs, built once at start and passed down (no globals). */
import type { FastifyBaseLogger } from 'fastify';
import type { Authenticator } from '../api/auth.js';
import type { Config } from '../config.js';
import type { BlobStore } from '../store/blob-store.js';
import type { Store } from '../store/port.js';
import type { RuntimeInfo } from './runtime-info.js';

export interface Deps {
  config: Config;
  store: Store;
  blobs: BlobStore;
  auth: Authenticator;
  runtime: RuntimeInfo;
  log: FastifyBaseLogger;
  /** Asks embedded workers to heartbeat now (a cancel reaches them at once instead of within 10 s). */
  nudgeWorkers(): void;
  /** Direct dispatch to embedded workers with free slots (null without embedded workers). */
  reserveSlots(profile: string, tasks: number): import('../worker/embedded.js').DirectSlots | null;
}
