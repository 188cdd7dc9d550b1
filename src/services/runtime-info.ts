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
  const engine = await findEngine();
  if (engine) return { configured, kind: 'oci', engine, warning: null };
  if (configured === 'oci') {
    throw new Error('COMPUTALOT_RUNTIME=oci but neither podman nor docker can be run; run `npm run setup` (as root) or set COMPUTALOT_RUNTIME=process.');
  }
  return {
    configured, kind: 'process', engine: null,
    warning: 'No container engine (podman or docker) was found, so tasks run as host processes without a sandbox; run `npm run setup` to install podman and gVisor.',
  };
}
