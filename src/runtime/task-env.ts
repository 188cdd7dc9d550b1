/**
 * The environment of a task (SPEC §7), built fresh for every attempt.
 *
 * Invariants:
 * - The host's environment is never passed wholesale: the server keeps DATABASE_URL,
 *   COMPUTALOT_ADMIN_TOKEN, cloud credentials and the like in it, and a task is user code. Only the names in
 *   the allow-list (plus every LC_* locale variable) are copied from the host.
 * - Layers, later wins: host allow-list < manifest `env` < the job's `env` < the COMPUTALOT_* protocol
 *   variables. Users may shadow PATH or HOME on purpose; nobody may fake the protocol's paths or ids.
 * - Values are strings; a NUL byte would make spawn throw, so such entries are dropped instead.
 */
import type { AttemptIds } from './port.js';

/**
 * Host variables a task inherits: what programs need to find tools, a home and a locale. A trailing `*`
 * matches a prefix.
 */
export const DEFAULT_PASS_ENV: readonly string[] = [
  'PATH', 'HOME', 'USER', 'LOGNAME', 'SHELL', 'LANG', 'LANGUAGE', 'LC_*', 'TZ', 'TMPDIR',
];

/** When the host has no PATH at all, tasks still find the usual tools (execvp's own default is worse). */
const FALLBACK_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The attempt's files as the task sees them. */
export interface ProtocolPaths {
  payload: string;
  result: string;
  progress: string;
  scratch: string;
  checkpoint: string | null;
}

export function protocolVars(paths: ProtocolPaths, ids: AttemptIds): Record<string, string> {
  const vars: Record<string, string> = {
    COMPUTALOT_TASK_PAYLOAD: paths.payload,
    COMPUTALOT_RESULT_PATH: paths.result,
    COMPUTALOT_PROGRESS_PATH: paths.progress,
    COMPUTALOT_SCRATCH_DIR: paths.scratch,
    COMPUTALOT_JOB_ID: ids.jobId,
    COMPUTALOT_TASK_ID: ids.taskId,
    COMPUTALOT_TASK_INDEX: String(ids.taskIndex),
    COMPUTALOT_TASK_COUNT: String(ids.taskCount),
    COMPUTALOT_ATTEMPT: String(ids.attempt),
    COMPUTALOT_PROJECT: ids.project,
    COMPUTALOT_CONTENT_HASH: ids.contentHash,
  };
  // Only with checkpointing: a task tests for the variable to know whether it may resume.
  if (paths.checkpoint !== null) vars.COMPUTALOT_CHECKPOINT_DIR = paths.checkpoint;
  return vars;
}

/** The host part, computed once per runtime: the host env does not change under a running server. */
export function hostEnv(passEnv: readonly string[], source: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = {};
  const exact = new Set(passEnv.filter((name) => !name.endsWith('*')));
  const prefixes = passEnv.filter((name) => name.endsWith('*')).map((name) => name.slice(0, -1));
  for (const [name, value] of Object.entries(source)) {
    if (value === undefined) continue;
    if (exact.has(name) || prefixes.some((prefix) => name.startsWith(prefix))) env[name] = value;
  }
  env.PATH ??= FALLBACK_PATH;
  return env;
}

export function taskEnv(
  host: Readonly<Record<string, string>>,
  manifestEnv: Readonly<Record<string, string>>,
  jobEnv: Readonly<Record<string, string>>,
  protocol: Readonly<Record<string, string>>,
): Record<string, string> {
  const env: Record<string, string> = { ...host };
  for (const layer of [manifestEnv, jobEnv]) {
    for (const [name, value] of Object.entries(layer)) {
      if (typeof value !== 'string' || name === '' || name.includes('=') || `${name}${value}`.includes('\0')) continue;
      // The protocol's namespace: a job setting COMPUTALOT_CHECKPOINT_DIR must not fake checkpointing.
      if (name.startsWith('COMPUTALOT_')) continue;
      env[name] = value;
    }
  }
  return Object.assign(env, protocol);
}
