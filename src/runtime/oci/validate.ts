/**
 * Manifest `validation` (SPEC §4): preflight checks inside the freshly started sandbox, before init.
 *
 * - `executables`: found on the image's PATH (`command -v` through the image's /bin/sh);
 * - `files`: exist (a relative path is taken from the workdir);
 * - `commands`: exit 0.
 * Every check runs and is reported (`validation: [{check, ok, message}]` in /status/details); the first
 * failed one names the preparation's error.
 */
import type { NormalizedManifest } from '../../protocol/manifest.js';
import type { Sandbox } from './sandbox.js';

export interface CheckResult {
  check: string;
  ok: boolean;
  message: string;
}

const CHECK_TIMEOUT_MS = 60_000;

export async function runValidation(sandbox: Sandbox, validation: NormalizedManifest['validation'], workdir: string, env: Record<string, string>, onLog: (text: string) => void): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const opts = { cwd: workdir, env, timeoutMs: CHECK_TIMEOUT_MS, keep: 2048 };
  const describe = (r: Awaited<ReturnType<Sandbox['exec']>>): string =>
    r.lost ?? (r.errno !== null ? `could not start (errno ${r.errno})` : r.timedOut ? `timed out after ${CHECK_TIMEOUT_MS / 1000} s` : `exited with ${r.code ?? `signal ${r.signal}`}`);
  for (const name of validation.executables) {
    const r = await sandbox.exec(['/bin/sh', '-c', 'command -v "$1"', 'sh', name], opts);
    const ok = r.code === 0;
    results.push({ check: `executable ${name}`, ok, message: ok ? `found at ${r.output.trim()}` : `${name} is not on the image's PATH (${describe(r)})` });
  }
  for (const file of validation.files) {
    const r = await sandbox.exec(['/bin/sh', '-c', 'test -e "$1"', 'sh', file], opts);
    const ok = r.code === 0;
    results.push({ check: `file ${file}`, ok, message: ok ? 'exists' : `${file} does not exist in the image (from ${workdir})` });
  }
  for (const command of validation.commands) {
    const r = await sandbox.exec(command.command, opts);
    const ok = r.code === 0;
    const out = r.output.trim().slice(-500);
    if (out) onLog(`[validation ${command.label}] ${out}\n`);
    results.push({ check: command.label, ok, message: ok ? 'passed' : `${JSON.stringify(command.command)} ${describe(r)}${out ? `: ${out}` : ''}` });
  }
  for (const r of results) onLog(`validation ${r.ok ? 'ok' : 'FAILED'}: ${r.check}: ${r.message}\n`);
  return results;
}
