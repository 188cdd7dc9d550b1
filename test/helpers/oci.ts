/**
 * The sandboxed runtime's prerequisites for tests: podman that answers, gVisor's runsc, and the base image
 * `npm run setup` builds. Without them the oci tests skip with a reason, unless COMPUTALOT_REQUIRE_ALL=1,
 * under which the check throws and the test fails.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

export const BASE_IMAGE = 'localhost/computalot/python:bookworm';

let cached: string | null | undefined;

/** Why the oci runtime cannot be tested here, or null when it can. */
export function ociMissing(): string | null {
  if (cached !== undefined) return cached;
  cached = null;
  try {
    execFileSync('podman', ['image', 'exists', BASE_IMAGE], { stdio: 'ignore', timeout: 30_000 });
  } catch {
    cached = `podman or the base image ${BASE_IMAGE} is missing (run npm run setup as root)`;
  }
  if (!cached && !existsSync('/usr/bin/runsc')) cached = 'gVisor (/usr/bin/runsc) is missing (run npm run setup as root)';
  if (cached && process.env.COMPUTALOT_REQUIRE_ALL === '1') throw new Error(`COMPUTALOT_REQUIRE_ALL=1 but ${cached}`);
  return cached;
}

/** `describe`/`it` options: skip with the reason when the oci runtime cannot run here. */
export function ociOnly(): { skip?: string } {
  const missing = ociMissing();
  return missing ? { skip: missing } : {};
}

/**
 * Untags the images a test server's workers built (the list each worker keeps in its work dir), so test
 * runs do not pile images up in the host's podman storage: a CI machine kept every run's tags, and a
 * cached build then printed one "Successfully tagged" line per earlier test project. Untag, not remove by
 * id: an image still named by another server running meanwhile stays.
 */
export async function untagBuiltImages(dataDir: string): Promise<void> {
  const text = await readFile(join(dataDir, 'work', 'oci', 'images.txt'), 'utf8').catch(() => '');
  const images = [...new Set(text.split('\n').filter(Boolean))];
  if (images.length === 0) return;
  await new Promise<void>((resolve) => execFile('podman', ['rmi', '--ignore', ...images], { timeout: 60_000 }, () => resolve()));
}
