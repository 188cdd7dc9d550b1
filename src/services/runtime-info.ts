/**
 * Which runtime embedded workers use (SPEC §1 COMPUTALOT_RUNTIME):
 * - `oci`: podman must answer `podman info` and runsc must exist, else the server refuses to start and says
 *   what to install (`npm run setup`);
 * - `auto`: `oci` when both are there, else `process` with a warning that logs, /health and every project
 *   status repeat;
 * - `process`: host processes, no sandbox (development, hosts without a container engine).
 */
import { execFile } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface RuntimeInfo {
  configured: 'auto' | 'oci' | 'process';
  kind: 'oci' | 'process';
  engine: string | null;
  warning: string | null;
}

export interface EngineProbe {
  podman: string;
  runsc: string;
}

/** Why the oci runtime cannot run here, or null when it can. */
export async function ociUnavailable(probe: EngineProbe): Promise<string | null> {
  try {
    // `info` needs a working engine; `--version` answers even when only a client is installed.
    await run(probe.podman, ['info', '--format', '{{.Host.OCIRuntime.Name}}'], { timeout: 30_000 });
  } catch (error) {
    return `podman does not answer (${(error as Error).message.split('\n')[0]}); run \`npm run setup\` as root to install podman, runc and gVisor`;
  }
  if (!(await access(probe.runsc, constants.X_OK).then(() => true, () => false))) {
    return `gVisor's runsc is not at ${probe.runsc}; run \`npm run setup\` (or set COMPUTALOT_RUNSC)`;
  }
  return null;
}

export async function detectRuntime(configured: RuntimeInfo['configured'], probe: EngineProbe = { podman: 'podman', runsc: '/usr/bin/runsc' }): Promise<RuntimeInfo> {
  if (configured === 'process') {
    return { configured, kind: 'process', engine: null, warning: 'Tasks run as host processes without a sandbox (COMPUTALOT_RUNTIME=process); the Dockerfile is not used.' };
  }
  const missing = await ociUnavailable(probe);
  if (!missing) return { configured, kind: 'oci', engine: 'podman', warning: null };
  if (configured === 'oci') throw new Error(`COMPUTALOT_RUNTIME=oci: ${missing}.`);
  return {
    configured, kind: 'process', engine: null,
    warning: `The sandboxed runtime is not available (${missing}), so tasks run as host processes without a sandbox.`,
  };
}
