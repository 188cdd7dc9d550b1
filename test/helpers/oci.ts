/**
 * The sandboxed runtime's prerequisites for tests: podman that answers, gVisor's runsc, and the base image
 * `npm run setup` builds. Without them the oci tests skip with a reason, unless COMPUTALOT_REQUIRE_ALL=1,
 * under which the check throws and the test fails.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { appendFile, readFile } from 'node:fs/promises';
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
 * Every image name in podman's storage. `podman images` fails now and then while another test removes an
 * image it was listing ("image not known"): tried again, up to 5 s.
 */
export async function listImages(): Promise<string[]> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return execFileSync('podman', ['images', '--format', '{{.Repository}}:{{.Tag}}'], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 })
        .toString().split('\n').filter(Boolean);
    } catch (error) {
      if (attempt >= 50) throw error;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/**
 * Keeps test runs from piling images up in the host's podman storage (a CI machine kept every run's tags,
 * and a cached build then printed one "Successfully tagged" line per earlier test project): the images a
 * test server's workers built (the list each keeps in its work dir) are added to the run's list
 * (COMPUTALOT_TEST_IMAGES, set by scripts/test.sh), which the script untags when every test has ended.
 * Not at once: removing an image while another test's build is reusing it could fail that build. Without
 * the variable (a test file run by hand) they are left.
 */
export async function recordBuiltImages(dataDir: string): Promise<void> {
  const list = process.env.COMPUTALOT_TEST_IMAGES;
  if (!list) return;
  const text = await readFile(join(dataDir, 'work', 'oci', 'images.txt'), 'utf8').catch(() => '');
  if (text.trim() !== '') await appendFile(list, text.endsWith('\n') ? text : `${text}\n`);
}
