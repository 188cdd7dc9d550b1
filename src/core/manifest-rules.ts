/**
 * Manifest rules that a JSON schema cannot say (SPEC §4), each reported with its JSON path.
 *
 * Invariants:
 * - Every rule skips values of the wrong type: the schema already reported them, once.
 * - Container paths (workdir, mounts) are absolute and have no `..` segment; mounts are never `/`, never
 *   the workdir, and no two mounts share a path (a later mount would silently hide an earlier one).
 * - Mount paths hold no `:` or `,` (they become `podman -v host:path:ro` arguments, where those would add
 *   mount options, e.g. make a shared read-only data source writable) and stay out of `/computalot` (the
 *   runtime's own mounts) and the kernel's `/proc`, `/sys` and `/dev`.
 * - Project paths (build.dockerfile, build.context) follow the tarball's own path rules (core/tar-paths).
 * - Names are unique among services, among data_sources and among cache_mounts: they key per-worker state.
 * - `runc` is refused unless the server allows it; the message names the switch.
 * - Pure: no I/O.
 */
import type { Problem } from './errors.js';
import { isObject, pointer, type Json } from './manifest-problems.js';
import { normalizeEntryPath } from './tar-paths.js';

export interface RuleOptions {
  allowRunc: boolean;
}

/** Container paths a mount may not take: the runtime's own mounts, and the kernel's file systems. */
const RESERVED_MOUNTS = ['/computalot', '/proc', '/sys', '/dev'];

const list = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);
const str = (value: unknown): string | null => (typeof value === 'string' ? value : null);

/** `/a/b/` → `/a/b`; null when the path has a `..` segment. */
export function normalizeContainerPath(path: string): string | null {
  const parts = path.split('/').filter((part) => part !== '' && part !== '.');
  if (parts.includes('..')) return null;
  return `/${parts.join('/')}`;
}

function uniqueNames(items: unknown[], base: string, problems: Problem[]): void {
  const first = new Map<string, number>();
  items.forEach((item, index) => {
    const name = isObject(item) ? str(item.name) : null;
    if (name === null) return;
    const earlier = first.get(name);
    if (earlier === undefined) first.set(name, index);
    else problems.push({ path: `${base}/${index}/name`, message: `repeats the name "${name}" of ${base}/${earlier}; names must be unique` });
  });
}

function projectPath(value: unknown, path: string, problems: Problem[]): void {
  const raw = str(value);
  if (raw === null || raw === '') return;
  try {
    normalizeEntryPath(raw);
  } catch {
    problems.push({ path, message: 'must be a relative path inside the tarball without "..", such as "Dockerfile"' });
  }
}

export function ruleProblems(manifest: Json, options: RuleOptions): Problem[] {
  const problems: Problem[] = [];
  const runtime = isObject(manifest.runtime) ? manifest.runtime : {};

  if (runtime.sandbox === 'runc' && !options.allowRunc) {
    problems.push({
      path: '/runtime/sandbox',
      message: 'is "runc", which this server does not allow; use "gvisor" (an admin may allow runc with COMPUTALOT_ALLOW_RUNC=1)',
    });
  }

  const workdirRaw = str(runtime.workdir);
  const workdir = workdirRaw?.startsWith('/') ? normalizeContainerPath(workdirRaw) : undefined;
  if (workdir === null) {
    problems.push({ path: '/runtime/workdir', message: 'must be an absolute path in the container without ".." segments' });
  }
  uniqueNames(list(runtime.services), '/runtime/services', problems);

  const build = isObject(manifest.build) ? manifest.build : {};
  projectPath(build.dockerfile, '/build/dockerfile', problems);
  projectPath(build.context, '/build/context', problems);
  if (str(build.dockerfile) !== null && /^[./]*$/.test(str(build.dockerfile)!)) {
    problems.push({ path: '/build/dockerfile', message: 'must name a file, such as "Dockerfile"' });
  }

  const sources = list(manifest.data_sources);
  const caches = list(manifest.cache_mounts);
  uniqueNames(sources, '/data_sources', problems);
  uniqueNames(caches, '/cache_mounts', problems);
  sources.forEach((source, index) => {
    if (!isObject(source)) return;
    const hasArtifact = source.artifact !== undefined;
    const hasUrl = source.url !== undefined;
    if (hasArtifact === hasUrl) {
      problems.push({
        path: pointer('data_sources', index),
        message: hasArtifact ? 'has both "artifact" and "url"; give exactly one' : 'needs exactly one of "artifact" or "url"',
      });
    }
  });

  const mounts = new Map<string, string>();
  const mount = (value: unknown, path: string): void => {
    const raw = str(value);
    if (raw === null || !raw.startsWith('/')) return;
    const normal = normalizeContainerPath(raw);
    if (normal === null || normal === '/') {
      problems.push({ path, message: 'must be an absolute path in the container other than "/", without ".." segments' });
    } else if (/[:,\n\r\0]/.test(raw)) {
      problems.push({ path, message: 'may not contain ":", "," or line breaks; pick a plain path such as /data/input' });
    } else if (RESERVED_MOUNTS.some((r) => normal === r || normal.startsWith(`${r}/`))) {
      problems.push({ path, message: `is under ${RESERVED_MOUNTS.find((r) => normal === r || normal.startsWith(`${r}/`))}, which the runtime or the kernel owns; mount it elsewhere, such as /data` });
    } else if (normal === workdir) {
      problems.push({ path, message: `is the workdir (${normal}); mount it somewhere else so it does not hide the project` });
    } else if (mounts.has(normal)) {
      problems.push({ path, message: `is already mounted by ${mounts.get(normal)}; each mount needs its own path` });
    } else {
      mounts.set(normal, path);
    }
  };
  sources.forEach((source, index) => isObject(source) && mount(source.mount, pointer('data_sources', index, 'mount')));
  caches.forEach((cache, index) => isObject(cache) && mount(cache.path, pointer('cache_mounts', index, 'path')));
  return problems;
}
