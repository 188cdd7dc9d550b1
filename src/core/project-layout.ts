/**
 * Checks that a pushed tree is laid out as a project: manifest and Dockerfile at the root (SPEC §3.3).
 *
 * Invariants:
 * - The most common mistake, `tar czf code.tar.gz my-project/`, is named as such (`nested_project_root`,
 *   with the folder and the command that fixes it) instead of a bare `dockerfile_missing`: that happens when
 *   neither the manifest nor the Dockerfile is at the root, every entry sits inside one top-level folder,
 *   and that folder holds the manifest or the Dockerfile.
 * - Otherwise a missing Dockerfile at `build.dockerfile` (normalised, relative to the root) is
 *   `dockerfile_missing`. A symlink there counts as present (the build resolves it inside the tree).
 * - Pure: no I/O.
 */
import type { FileEntry } from './content-hash.js';
import { AppError } from './errors.js';
import { MANIFEST_FILE } from './manifest.js';
import { normalizeEntryPath } from './tar-paths.js';

/** The one top-level folder that holds every entry, or null. */
function soleTopFolder(files: readonly FileEntry[]): string | null {
  let folder: string | null = null;
  for (const file of files) {
    const slash = file.path.indexOf('/');
    if (slash < 0) return null;
    const top = file.path.slice(0, slash);
    if (folder === null) folder = top;
    else if (folder !== top) return null;
  }
  return folder;
}

export function checkProjectLayout(
  files: readonly FileEntry[],
  manifestPresent: boolean,
  dockerfilePath: string,
): void {
  const dockerfile = normalizeEntryPath(dockerfilePath);
  const paths = new Set(files.map((file) => file.path));
  const dockerfileAtRoot = paths.has(dockerfile);
  if (!manifestPresent && !dockerfileAtRoot) {
    const folder = soleTopFolder(files);
    if (folder !== null && (paths.has(`${folder}/${MANIFEST_FILE}`) || paths.has(`${folder}/${dockerfile}`))) {
      throw new AppError('nested_project_root', { folder }, { folder });
    }
  }
  if (!dockerfileAtRoot) {
    throw new AppError('dockerfile_missing', { path: dockerfile }, { path: dockerfile });
  }
}
