/**
 * The checks of a push that need the whole tree: manifest (core/manifest) and layout (core/project-layout).
 *
 * Invariants:
 * - Order matches what a user should fix first: an invalid manifest (422 invalid_manifest) before a
 *   nested project root (422 nested_project_root) before a missing Dockerfile (422 dockerfile_missing).
 * - The Dockerfile is looked for where the manifest's `build.dockerfile` points (default `Dockerfile`).
 * - No I/O: it works on what intake (or extraction's scan) already collected.
 */
import type { FileEntry } from '../core/content-hash.js';
import { parseManifest, type ParsedManifest, type ParseManifestOptions } from '../core/manifest.js';
import { checkProjectLayout } from '../core/project-layout.js';

export function inspectProject(
  result: { files: readonly FileEntry[]; manifestText: string | null },
  opts: ParseManifestOptions,
): ParsedManifest {
  const parsed = parseManifest(result.manifestText, opts);
  checkProjectLayout(result.files, result.manifestText !== null, parsed.manifest.build.dockerfile);
  return parsed;
}
