/**
 * The host folders the oci runtime owns, all under the worker's work dir (inside the data dir: nothing from
 * a tarball or a task is written anywhere else):
 *
 *   <workDir>/oci/bin/helper-<hash>                  the compiled helper (helper-binary.ts)
 *   <workDir>/oci/src/<hex>.<rand>/                   a revision unpacked as build context (removed after the build)
 *   <workDir>/oci/io/<sandbox name>/                  mounted at /computalot/io: attempts/ (payload, result, progress, scratch, checkpoint)
 *   <workDir>/oci/caches/<project id>/<name>/         cache_mounts, per worker and project, across revisions
 *   <workDir>/oci/data/<sha256>                       data_sources fetched by url, by content
 *   <workDir>/oci/images.txt                          the images this worker built (pruned under low disk)
 *
 * Names from manifests (cache names) are checked by the manifest schema (`[a-z0-9_-]`-style names); project
 * ids and hashes are ours. Each is still reduced to a safe path component here.
 */
import { join } from 'node:path';

const safe = (part: string): string => part.replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^\.+/, '_').slice(0, 128) || '_';

export const ociRoot = (workDir: string): string => join(workDir, 'oci');
export const sourceDir = (workDir: string, contentHash: string, suffix: string): string =>
  join(ociRoot(workDir), 'src', `${safe(contentHash.replace(/^sha256:/, ''))}.${safe(suffix)}`);
export const ioDir = (workDir: string, sandboxName: string): string => join(ociRoot(workDir), 'io', safe(sandboxName));
export const cacheDir = (workDir: string, projectId: string, name: string): string =>
  join(ociRoot(workDir), 'caches', safe(projectId), safe(name));
export const dataDir = (workDir: string): string => join(ociRoot(workDir), 'data');
export const dataFile = (workDir: string, sha256: string): string => join(dataDir(workDir), safe(sha256.toLowerCase()));
export const builtImagesFile = (workDir: string): string => join(ociRoot(workDir), 'images.txt');
