/**
 * The sandboxed runtime's prerequisites for tests: podman that answers, gVisor's runsc, and the base image
 * `npm run setup` builds. Without them the oci tests skip with a reason, unless COMPUTALOT_REQUIRE_ALL=1,
 * under which the check throws and the test fails.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

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
