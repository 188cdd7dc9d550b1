/**
 * Pure path rules for tarball entries and symlink targets (SPEC §3.3).
 *
 * Invariants:
 * - A normalised path is relative, uses `/`, has no empty, `.` or `..` segment and no trailing `/`; the
 *   project root itself normalises to "" (only a folder entry may name it).
 * - An absolute path (`/x`, or a Windows drive or UNC root, which node-tar would strip on extraction and so
 *   land somewhere other than where the intake saw it) or any `..` segment is refused with `unsafe_path`.
 * - A symlink target must be relative and stay inside the tree when resolved from the link's own folder
 *   (`unsafe_link` otherwise). `..` is allowed while it stays inside (`lib/x -> ../bin/y`).
 * - Lexical checks per link are not enough once links point through other links (`a -> .`, `b -> a/..`
 *   escapes although `a/..` looks harmless), so `findEscapingLink` resolves every link of the final tree
 *   the way the kernel would, following links component by component.
 * - No I/O.
 */
import { AppError } from './errors.js';

const DRIVE_ROOT = /^[A-Za-z]:/;
/** The kernel gives up after 40 link hops (ELOOP); a loop cannot leave the tree, so it is harmless. */
const MAX_HOPS = 40;

/** Splits into segments, dropping empty and `.` ones; `..` is kept for the caller to judge. */
function segments(path: string): string[] {
  return path.split('/').filter((part) => part !== '' && part !== '.');
}

/** Normalises an entry path or throws `unsafe_path` naming the entry as it appears in the archive. */
export function normalizeEntryPath(raw: string): string {
  if (raw.startsWith('/') || raw.startsWith('\\') || DRIVE_ROOT.test(raw) || raw.includes('\0')) {
    throw new AppError('unsafe_path', { entry: raw }, { entry: raw });
  }
  const parts = segments(raw);
  // node-tar treats `\` as a separator when it looks for `..`, so a name like `a\..\..\x` would be
  // refused at extraction; refuse it here too, so intake and extraction always agree.
  if (parts.includes('..') || segments(raw.replaceAll('\\', '/')).includes('..')) {
    throw new AppError('unsafe_path', { entry: raw }, { entry: raw });
  }
  return parts.join('/');
}

/** The folder holding a normalised path ("" for the root). */
export function parentOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash < 0 ? '' : path.slice(0, slash);
}

/** Every folder above a normalised path, nearest last: `a/b/c` → [`a`, `a/b`]. */
export function ancestorsOf(path: string): string[] {
  const parts = path.split('/');
  const out: string[] = [];
  for (let i = 1; i < parts.length; i += 1) out.push(parts.slice(0, i).join('/'));
  return out;
}

/**
 * Resolves `target` lexically from `folder` (both relative to the root). Returns the normalised result, or
 * null when it climbs above the root.
 */
export function resolveLexically(folder: string, target: string): string | null {
  const stack = segments(folder);
  for (const part of segments(target)) {
    if (part === '..') {
      if (stack.length === 0) return null;
      stack.pop();
    } else {
      stack.push(part);
    }
  }
  return stack.join('/');
}

/** Throws `unsafe_link` unless `target` is relative and stays inside the tree from the link's folder. */
export function checkSymlinkTarget(linkPath: string, target: string): void {
  const absolute = target.startsWith('/') || target.startsWith('\\') || DRIVE_ROOT.test(target);
  const folder = parentOf(linkPath);
  const escapes =
    resolveLexically(folder, target) === null ||
    resolveLexically(folder, target.replaceAll('\\', '/')) === null;
  if (target === '' || absolute || escapes) {
    throw new AppError('unsafe_link', { entry: linkPath, target }, { entry: linkPath, target });
  }
}

/**
 * Follows `target` from `folder` through the tree's symlinks (`links`: normalised path → raw target).
 * Returns false as soon as any step climbs above the root or meets an absolute target.
 */
function staysInside(folder: string, target: string, links: ReadonlyMap<string, string>): boolean {
  const stack = segments(folder);
  const queue = target.split('/');
  let hops = 0;
  while (queue.length > 0) {
    const part = queue.shift()!;
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (stack.length === 0) return false;
      stack.pop();
      continue;
    }
    stack.push(part);
    const next = links.get(stack.join('/'));
    if (next === undefined) continue;
    hops += 1;
    if (hops > MAX_HOPS) return true;
    if (next.startsWith('/') || next.startsWith('\\') || DRIVE_ROOT.test(next)) return false;
    // The link is replaced by its target, read from the link's own folder.
    stack.pop();
    queue.unshift(...next.split('/'));
  }
  return true;
}

/** The first symlink (in the given order) whose target, followed through other links, leaves the tree. */
export function findEscapingLink(
  links: ReadonlyMap<string, string>,
): { path: string; target: string } | null {
  for (const [path, target] of links) {
    if (!staysInside(parentOf(path), target, links)) return { path, target };
  }
  return null;
}
