/**
 * Which runtime embedded workers use (SPEC §1 COMPUTALOT_RUNTIME): `auto` picks `oci` when podman or
 * docker answers, else `process` with a warning that logs, /health and every project status repeat.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface RuntimeInfo {
  configured: 'auto' | 'oci' | 'process';
  kind: 'oci' | 'process';
  engine: string | null;
  warning: string | null;
}

async function findEngine(): Promise<string | null> {
  for (const engine of ['podman', 'docker']) {
    try {
      // `info` needs a working engine; `--version` answers even when only a client is installed.
      await run(engine, ['info'], { timeout: 15_000 });
      return engine;
    } catch {
      // not installed or not runnable: try the next one
    }
  }
  return null;
}

export async function detectRuntime(configured: RuntimeInfo['configured']): Promise<RuntimeInfo> {
  if (configured === 'process') {
    return { configured, kind: 'process', engine: null, warning: 'Tasks run as host processes without a sandbox (COMPUTALOT_RUNTIME=process); the Dockerfile is not used.' };
  }
  // The sandboxed oci runtime is the next step of the roadmap (docs/roadmap.md); until it lands, say so
  // rather than pretend: `oci` refuses to start and `auto` runs processes with a warning.
  if (configured === 'oci') {
    throw new Error('COMPUTALOT_RUNTIME=oci: the sandboxed runtime is not available in this version yet; use COMPUTALOT_RUNTIME=process (or auto).');
  }
  const engine = await findEngine();
  if (engine) {
    return {
      configured, kind: 'process', engine,
      warning: `${engine} was found, but the sandboxed runtime is not available in this version yet, so tasks run as host processes without a sandbox.`,
    };
  }
  return {
    configured, kind: 'process', engine: null,
    warning: 'No container engine (podman or docker) was found, so tasks run as host processes without a sandbox; run `npm run setup` to install podman and gVisor.',
  };
}
