/**
 * The Runtime port: how a worker turns a stored revision into a prepared runtime and runs task attempts in
 * it (SPEC §6 retries/timeouts/cancel, §7 runner protocol, §8 workers and runtimes). Two adapters: `process`
 * (host processes in the unpacked revision) and `oci` (podman/docker + gVisor or runc, a warm sandbox with a
 * resident helper inside so a warm task starts in milliseconds).
 *
 *   prepare ──▶ Prepared ──▶ run ──▶ RunningAttempt { outcome, cancel } ──▶ … ──▶ discard
 *                 (warm)       (many times, concurrently)                   (stale / idle / invalidate)
 *
 * Invariants every adapter keeps:
 * - `prepare` is idempotent per (project, content hash): concurrent calls share one preparation; a failure
 *   throws `RuntimeError` naming its phase and leaves nothing that a later `prepare` mistakes for ready.
 * - `run` never throws and never rejects: every failure (runner not found, setup failed, …) is an
 *   `AttemptOutcome` with `exitCode: null` and `error`. It returns at once; the user process starts after a
 *   few milliseconds of async setup, and `onStart` fires the moment it has started (never on failure).
 * - A `cancel()` before the user process started means it never starts (`cancelled: true`, no `onStart`).
 * - Timeout and cancel send SIGTERM to the attempt's whole process tree, then SIGKILL after the grace
 *   period (SPEC: 10 s). `outcome` settles only after the tree is gone (or was SIGKILLed), stdout/stderr
 *   are drained, the result file is read, and the attempt's scratch files are removed. The checkpoint
 *   folder is never removed: it belongs to the caller, which carries it into the next attempt.
 * - Environment: host variables never reach a task wholesale (the server's secrets, such as DATABASE_URL
 *   or COMPUTALOT_ADMIN_TOKEN, live in its env). A task sees a small allow-list of host variables (PATH,
 *   HOME, LANG, …; the `oci` adapter: the image's own), then the manifest `env`, then `AttemptInput.env`,
 *   then the runner protocol's COMPUTALOT_* variables, which nothing can override.
 * - Paths in the COMPUTALOT_* variables are as the task sees them (host paths for `process`, container
 *   paths for `oci`); callers only ever handle host paths.
 * - Callbacks must not throw; adapters catch and drop a throw so a reporting bug cannot orphan a process.
 */
import type { RuntimePhase } from '../core/states.js';
import type { NormalizedManifest } from '../protocol/manifest.js';

export type RuntimeKind = 'process' | 'oci';

/** Extra detail about the phase being entered, for `status_reason` ("build step 3/7"). */
export interface PhaseInfo {
  step?: number;
  steps?: number;
  message?: string;
}

export interface PrepareInput {
  projectId: string;
  /** `sha256:` + 64 hex; names the revision everywhere. */
  contentHash: string;
  /** Host path of the stored revision tarball (the worker fetched it already or reads the blob store). */
  tarballPath: string;
  manifest: NormalizedManifest;
  /** A per-worker folder inside the data dir that the runtime owns (unpacked trees, attempt scratch). */
  workDir: string;
  /** After `invalidate`: rebuild without any layer cache (ignored by `process`). */
  noCache?: boolean;
  onPhase(phase: RuntimePhase, info?: PhaseInfo): void;
  /** Build / init output for `log_tail`; the caller redacts and caps it. */
  onLog(chunk: string): void;
  /** Aborts this caller's wait; a preparation shared with other callers goes on for them. */
  signal: AbortSignal;
}

/** SPEC §6 task `cold_start`: the time this `prepare` call spent in each part of preparation. */
export interface ColdStartTimings {
  fetch_ms: number;
  build_ms: number;
  init_ms: number;
  sandbox_ms: number;
}

export interface Prepared {
  readonly kind: RuntimeKind;
  /** Stable identity of the prepared runtime inside its adapter (process: per content hash). */
  readonly key: string;
  readonly projectId: string;
  readonly contentHash: string;
  readonly timings: ColdStartTimings;
  /** false when this call found the runtime already warm (its timings are then ~0, not a cold start). */
  readonly cold: boolean;
  /** Where tasks start, as tasks see it (`runtime.workdir` for oci; the unpacked revision for process). */
  readonly workdir: string;
  /** The manifest's `env`, layered under each attempt's env. */
  readonly manifestEnv: Readonly<Record<string, string>>;
  /** Plain sentences for status: what this runtime does not do that the manifest asks for. */
  readonly warnings: readonly string[];
  /** The manifest's validation checks as they ran during preparation (oci). */
  readonly validation?: readonly ValidationCheck[];
}

export interface AttemptIds {
  jobId: string;
  taskId: string;
  taskIndex: number;
  taskCount: number;
  attempt: number;
  project: string;
  contentHash: string;
}

export interface Progress {
  /** 0..1 */
  progress: number;
  message?: string;
}

export interface AttemptInput {
  prepared: Prepared;
  /** argv; a bare name is looked up on the task's PATH, a relative path from the workdir. */
  runnerCommand: string[];
  /** Written as JSON to the file named by COMPUTALOT_TASK_PAYLOAD. */
  payload: unknown;
  /** The job's env (over the manifest's). COMPUTALOT_* variables are added by the runtime and win. */
  env: Record<string, string>;
  ids: AttemptIds;
  /** Per attempt (SPEC 1–86,400); a non-positive or non-finite value means no timeout. */
  timeoutS: number;
  /** A host folder whose contents the task sees as COMPUTALOT_CHECKPOINT_DIR and which is kept after. */
  checkpointDir: string | null;
  /** stdout and stderr bytes as they arrive (arrival order across the two); the caller caps storage. */
  onOutput(chunk: Buffer, stream: 'stdout' | 'stderr'): void;
  /** Each new valid line of the progress file, in order. */
  onProgress(progress: Progress): void;
  /** The user process has started: the task is now `running` (SPEC: a cancel before this never starts it). */
  onStart(): void;
}

/** Codes of attempt failures that are not the user process's own exit. */
export type AttemptErrorCode =
  | 'runner_not_found' // the command is neither on PATH nor a file relative to the workdir
  | 'runner_not_executable' // it exists but may not be executed (no x bit, a folder, …)
  | 'runner_spawn_failed' // any other reason the process could not be started
  | 'invalid_runner_command' // empty argv or a NUL byte in it
  | 'attempt_setup_failed' // the scratch folder or payload file could not be written
  | 'runtime_not_prepared'; // `prepared` was discarded (or never made by this runtime): prepare again

export interface AttemptError {
  code: AttemptErrorCode;
  message: string;
}

export interface AttemptOutcome {
  /** null when the process never started, or ended by a signal. */
  exitCode: number | null;
  /** The signal that ended the user process (e.g. "SIGKILL"), else null. */
  signal: string | null;
  timedOut: boolean;
  cancelled: boolean;
  /** The result file's text; null when missing, not a regular file, or over RESULT_LIMIT_BYTES. */
  resultFileText: string | null;
  /** Its size in bytes (0 when missing): above RESULT_LIMIT_BYTES the caller fails with result_too_large. */
  resultFileBytes: number;
  /**
   * For SPEC §7's stdout-result fallback, stdout only (stderr excluded): its last STDOUT_TAIL_BYTES, after
   * the last line of the whole stream that looks like a JSON object when that line is older or longer
   * (output-capture.ts StdoutCapture), so lines read from the end come in stream order.
   */
  stdoutTail: string;
  /** From the start of the user process to its exit; 0 when it never started. */
  durationMs: number;
  error?: AttemptError;
}

export interface RunningAttempt {
  readonly outcome: Promise<AttemptOutcome>;
  /** SIGTERM to the tree, SIGKILL after the grace period. Idempotent; a no-op once the attempt ended. */
  cancel(): void;
}

export interface Runtime {
  readonly kind: RuntimeKind;
  prepare(input: PrepareInput): Promise<Prepared>;
  run(input: AttemptInput): RunningAttempt;
  /** Drops a prepared runtime. Running attempts finish undisturbed; the next `prepare` starts afresh. */
  discard(prepared: Prepared): Promise<void>;
  /** Shutdown: cancels every running attempt, waits for their outcomes, releases resident resources. */
  close(): Promise<void>;
  /**
   * Starts what attempts will need before the first one asks (the process runtime's helper: compiled and
   * started when the workers start, not inside the first attempt). Failures are the first attempt's to report.
   */
  warmUp?(): void;
  /** What the worker announces about its runtime (SPEC §8), e.g. `{kind: "oci", sandboxes: ["gvisor"]}`. */
  describe?(): Record<string, unknown>;
  /** Whether a prepared runtime can still run attempts (a sandbox may die or be dropped when idle). */
  isLive?(prepared: Prepared): boolean;
  /** Calls back when the runtime drops a prepared runtime on its own (idle, disk, crash, invalidate). */
  onDropped?(listener: (projectId: string, contentHash: string, reason: string) => void): () => void;
  /** SPEC §5 invalidate: drops the project's runtimes and images; the next build skips the layer cache. */
  invalidate?(projectId: string): Promise<void>;
}

/** A validation check's outcome, for /status/details `validation`. */
export interface ValidationCheck {
  check: string;
  ok: boolean;
  message: string;
}

/** SPEC §7: a result over 10 MiB fails the attempt; adapters read at most one byte more than this. */
export const RESULT_LIMIT_BYTES = 10 * 1024 * 1024;
export const STDOUT_TAIL_BYTES = 64 * 1024;
/** SPEC §6: SIGKILL this long after SIGTERM. */
export const DEFAULT_KILL_GRACE_MS = 10_000;

/** A failed preparation: `phase` and `code` go into the readiness record (SPEC §5 `error`). */
export class RuntimeError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly phase: RuntimePhase,
    /** The validation checks, when validation failed. */
    readonly validation?: readonly ValidationCheck[],
  ) {
    super(message);
    this.name = 'RuntimeError';
  }
}
