/**
 * The helper binary that runs inside every sandbox (helper/computalot-helper.c), compiled once per source
 * version with the host's C compiler into `<workDir>/oci/bin/helper-<hash>`. Static, so it needs nothing
 * from the image; mounted read-only into each sandbox.
 *
 * Invariants: the binary at its final path is complete (compiled to a temp name, then renamed); concurrent
 * callers share one compilation; a compile failure says which compiler to install.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SOURCE = join(dirname(fileURLToPath(import.meta.url)), 'helper', 'computalot-helper.c');
/** Files the source includes: part of the binary's name, so a change to one builds a new binary. */
const INCLUDED = ['proc-tree.h', 'anchor.h', 'task-cgroup.h', 'task-start.h'].map((name) => join(dirname(SOURCE), name));

const compiling = new Map<string, Promise<string>>();

function compile(cc: string, source: string, out: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(cc, ['-static', '-O2', '-o', out, source], { timeout: 120_000 }, (error, _stdout, stderr) => {
      if (error) reject(new Error(`${cc} -static failed: ${String(stderr).trim() || error.message}. Install a C compiler with static libc (Debian: apt-get install gcc libc6-dev) or run npm run setup.`));
      else resolve();
    });
  });
}

/** The host path of the compiled helper for this source version, compiling it if needed. */
export async function helperBinary(workDir: string, cc = process.env.CC ?? 'cc'): Promise<string> {
  const hasher = createHash('sha256').update(await readFile(SOURCE));
  for (const file of INCLUDED) hasher.update(await readFile(file));
  const hash = hasher.digest('hex').slice(0, 16);
  const out = join(workDir, 'oci', 'bin', `helper-${hash}`);
  let pending = compiling.get(out);
  if (!pending) {
    pending = (async () => {
      if (await stat(out).then((s) => s.isFile(), () => false)) return out;
      await mkdir(dirname(out), { recursive: true });
      const tmp = `${out}.tmp-${randomBytes(4).toString('hex')}`;
      await compile(cc, SOURCE, tmp);
      await rename(tmp, out);
      return out;
    })();
    compiling.set(out, pending);
    pending.catch(() => compiling.delete(out));
  }
  return pending;
}
