/**
 * Builders of real tarballs for tests, made by real tools: GNU tar, bsdtar, `git archive`, Python's
 * tarfile (for entries no well-behaved tool writes: absolute paths, `..`, devices, hard links, duplicates),
 * plus gzip bombs, truncated / corrupt archives, a zip and a multipart body.
 *
 * Invariants: everything is written under one temp folder per process (`cleanupArchives()` removes it);
 * each builder returns the path of a new archive file (or a Buffer where that is natural); builders never
 * mutate the source folder they are given.
 */
import { execFile, spawnSync } from 'node:child_process';
import { chmod, cp, mkdir, mkdtemp, readdir, readFile, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { Header } from 'tar';

const run = promisify(execFile);

/**
 * For `describe(name, { skip: toolSkip('bsdtar', 'git') }, …)`: a skip reason naming the missing tools and
 * `npm run setup`, or false. Under COMPUTALOT_REQUIRE_ALL=1 nothing is skipped, so a missing tool fails.
 */
export function toolSkip(...tools: string[]): string | false {
  if (process.env.COMPUTALOT_REQUIRE_ALL === '1') return false;
  const missing = tools.filter((tool) => spawnSync(tool, ['--version'], { stdio: 'ignore' }).error !== undefined);
  return missing.length > 0 ? `${missing.join(', ')} not installed; run npm run setup` : false;
}
let root: Promise<string> | undefined;
let counter = 0;

/** A new empty folder under this process's scratch root. */
export async function scratchDir(prefix = 'dir'): Promise<string> {
  root ??= mkdtemp(join(tmpdir(), 'computalot-archives-'));
  return mkdtemp(join(await root, `${prefix}-`));
}

export async function cleanupArchives(): Promise<void> {
  if (root) await rm(await root, { recursive: true, force: true });
  root = undefined;
}

async function outFile(ext: string): Promise<string> {
  counter += 1;
  return join(await scratchDir('out'), `archive-${counter}${ext}`);
}

export type TreeNode = string | Buffer | { content: string | Buffer; mode?: number } | { symlink: string } | { dir: true };
/** Relative path → content. Files are 0644 unless a mode is given. */
export type TreeSpec = Record<string, TreeNode>;

/** Writes a folder with the given files, symlinks and folders, and returns its path. */
export async function makeTree(spec: TreeSpec): Promise<string> {
  const dir = await scratchDir('tree');
  for (const [path, node] of Object.entries(spec)) {
    const abs = join(dir, path);
    await mkdir(dirname(abs), { recursive: true });
    if (typeof node === 'string' || Buffer.isBuffer(node)) {
      await writeFile(abs, node);
      await chmod(abs, 0o644);
    } else if ('symlink' in node) {
      await symlink(node.symlink, abs);
    } else if ('dir' in node) {
      await mkdir(abs, { recursive: true });
    } else {
      await writeFile(abs, node.content);
      await chmod(abs, node.mode ?? 0o644);
    }
  }
  return dir;
}

export interface ToolOptions {
  /** true for the tool's default level, or a level 1-9. */
  gzip?: boolean | number;
  /** Archive `.` (entries start with `./`) instead of the top-level names. */
  dotSlash?: boolean;
  owner?: string;
  uid?: number;
  mtime?: string;
  format?: string;
}

const names = async (dir: string, opts: ToolOptions): Promise<string[]> =>
  opts.dotSlash ? ['.'] : (await readdir(dir)).sort();
const level = (gzip: boolean | number | undefined): number => (typeof gzip === 'number' ? gzip : 6);

export async function gnuTar(dir: string, opts: ToolOptions = {}): Promise<string> {
  const out = await outFile(opts.gzip ? '.tar.gz' : '.tar');
  const args = ['-c', '-f', out, '-C', dir];
  if (opts.gzip) args.push(`--use-compress-program=gzip -${level(opts.gzip)} -n`);
  if (opts.format) args.push(`--format=${opts.format}`);
  if (opts.owner) args.push(`--owner=${opts.owner}`, `--group=${opts.owner}`);
  if (opts.uid !== undefined) args.push(`--owner=:${opts.uid}`, `--group=:${opts.uid}`);
  if (opts.mtime) args.push(`--mtime=${opts.mtime}`);
  await run('tar', [...args, ...(await names(dir, opts))]);
  return out;
}

export async function bsdTar(dir: string, opts: ToolOptions = {}): Promise<string> {
  const out = await outFile(opts.gzip ? '.tar.gz' : '.tar');
  const args = ['-c', '-f', out];
  if (opts.gzip) args.push('-z', '--options', `gzip:compression-level=${level(opts.gzip)}`);
  if (opts.format) args.push('--format', opts.format);
  if (opts.owner) args.push('--uname', opts.owner, '--gname', opts.owner);
  if (opts.uid !== undefined) args.push('--uid', String(opts.uid), '--gid', String(opts.uid));
  await run('bsdtar', [...args, '-C', dir, ...(await names(dir, opts))]);
  return out;
}

/** Commits a copy of `dir` to a throwaway repository and runs `git archive` on it. */
export async function gitArchive(dir: string, opts: ToolOptions = {}): Promise<string> {
  const repo = join(await scratchDir('repo'), 'r');
  await cp(dir, repo, { recursive: true, verbatimSymlinks: true });
  const git = (...args: string[]) =>
    run('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.invalid', '-c', 'core.fileMode=true', ...args], { cwd: repo });
  await git('init', '-q');
  await git('add', '-A');
  await git('commit', '-q', '-m', 'snapshot');
  const out = await outFile(opts.gzip ? '.tar.gz' : '.tar');
  const gz = opts.gzip ? ['--format=tar.gz', `-${level(opts.gzip)}`] : ['--format=tar'];
  await git('archive', ...gz, '-o', out, 'HEAD');
  return out;
}

/** One entry for Python's tarfile, written exactly as given (no sanitising). */
export interface PyEntry {
  name: string;
  type?: 'file' | 'dir' | 'symlink' | 'hardlink' | 'chr' | 'blk' | 'fifo' | 'raw';
  data?: string | Buffer;
  mode?: number;
  linkname?: string;
  uid?: number;
  gid?: number;
  uname?: string;
  mtime?: number;
  /** For type 'raw': the one-character typeflag to write (e.g. 'S' sparse, 'V' volume label, 'Z'). */
  typeflag?: string;
}

export interface PyOptions {
  gzip?: boolean | number;
  format?: 'pax' | 'gnu' | 'ustar';
}

const PYTHON_TAR = String.raw`
import base64, io, json, sys, tarfile
spec = json.load(sys.stdin)
fmt = {'pax': tarfile.PAX_FORMAT, 'gnu': tarfile.GNU_FORMAT, 'ustar': tarfile.USTAR_FORMAT}[spec['format']]
kw = {'compresslevel': spec['level']} if spec['gzip'] else {}
types = {'file': tarfile.REGTYPE, 'dir': tarfile.DIRTYPE, 'symlink': tarfile.SYMTYPE, 'hardlink': tarfile.LNKTYPE,
         'chr': tarfile.CHRTYPE, 'blk': tarfile.BLKTYPE, 'fifo': tarfile.FIFOTYPE}
with tarfile.open(spec['out'], 'w:gz' if spec['gzip'] else 'w', format=fmt, **kw) as tf:
    for e in spec['entries']:
        ti = tarfile.TarInfo(e['name'])
        t = e.get('type', 'file')
        ti.type = e['typeflag'].encode() if t == 'raw' else types[t]
        ti.mode = e.get('mode', 0o755 if t == 'dir' else 0o644)
        ti.uid, ti.gid = e.get('uid', 0), e.get('gid', 0)
        ti.uname, ti.gname = e.get('uname', ''), e.get('uname', '')
        ti.mtime = e.get('mtime', 0)
        ti.linkname = e.get('linkname', '')
        if t in ('chr', 'blk'):
            ti.devmajor, ti.devminor = 1, 3
        data = base64.b64decode(e['b64']) if 'b64' in e else None
        if data is not None:
            ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data) if data is not None else None)
`;

async function python(script: string, input: unknown): Promise<void> {
  const child = execFile('python3', ['-c', script]);
  const done = new Promise<void>((resolve, reject) => {
    let stderr = '';
    child.stderr?.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`python3 failed (${code}): ${stderr}`))));
  });
  child.stdin?.end(JSON.stringify(input));
  return done;
}

export async function pythonTar(entries: PyEntry[], opts: PyOptions = {}): Promise<string> {
  const out = await outFile(opts.gzip ? '.tar.gz' : '.tar');
  const wire = entries.map((entry) => {
    const type = entry.type ?? 'file';
    const data = entry.data ?? (type === 'file' ? '' : undefined);
    return { ...entry, data: undefined, ...(data === undefined ? {} : { b64: Buffer.from(data).toString('base64') }) };
  });
  await python(PYTHON_TAR, { out, gzip: Boolean(opts.gzip), level: level(opts.gzip), format: opts.format ?? 'pax', entries: wire });
  return out;
}

/** A tar.gz holding one file of `bytes` zero bytes: tiny on the wire, huge once inflated. */
export async function gzipBomb(bytes: number): Promise<string> {
  const out = await outFile('.tar.gz');
  const script = String.raw`
import sys, tarfile, io
class Zeros(io.RawIOBase):
    def __init__(self, n): self.n = n
    def readable(self): return True
    def readinto(self, b):
        k = min(len(b), self.n); b[:k] = bytes(k); self.n -= k; return k
n = int(sys.argv[2])
with tarfile.open(sys.argv[1], 'w:gz', compresslevel=9) as tf:
    ti = tarfile.TarInfo('zeros.bin'); ti.size = n
    tf.addfile(ti, io.BufferedReader(Zeros(n), 1 << 20))
`;
  await run('python3', ['-c', script, out, String(bytes)]);
  return out;
}

/** A valid archive cut short: inside a file's data for a plain tar, inside the deflate stream for gzip. */
export async function truncatedArchive(opts: { gzip?: boolean } = {}): Promise<string> {
  const data = Buffer.alloc(20_000, 'abcdefghij');
  const path = await pythonTar([{ name: 'Dockerfile', data: 'FROM scratch\n' }, { name: 'big.txt', data }], { gzip: opts.gzip });
  const full = (await readFile(path)).length;
  await truncate(path, opts.gzip ? Math.floor(full / 2) : 512 * 3 + 4000);
  return path;
}

/** A plain tar whose first header no longer matches its checksum. */
export async function corruptChecksumArchive(): Promise<string> {
  const path = await pythonTar([{ name: 'Dockerfile', data: 'FROM scratch\n' }]);
  const bytes = await readFile(path);
  bytes[0] = bytes[0] === 0x41 ? 0x42 : 0x41; // change the first letter of the name, not the checksum
  await writeFile(path, bytes);
  return path;
}

/** A tar.gz whose gzip trailer (CRC32) is wrong: the deflate data inflates, the check fails. */
export async function corruptGzipArchive(): Promise<string> {
  const path = await pythonTar([{ name: 'Dockerfile', data: 'FROM scratch\n' }], { gzip: true });
  const bytes = await readFile(path);
  bytes[bytes.length - 8] = (bytes[bytes.length - 8]! + 1) % 256;
  await writeFile(path, bytes);
  return path;
}

export async function zipArchive(files: Record<string, string> = { Dockerfile: 'FROM scratch\n' }): Promise<string> {
  const out = await outFile('.zip');
  const script = String.raw`
import json, sys, zipfile
with zipfile.ZipFile(sys.argv[1], 'w') as z:
    for name, data in json.loads(sys.argv[2]).items(): z.writestr(name, data)
`;
  await run('python3', ['-c', script, out, JSON.stringify(files)]);
  return out;
}

/** What `curl -F file=@code.tar.gz` would send. */
export function multipartBody(
  file: Buffer,
  opts: { field?: string; filename?: string; boundary?: string } = {},
): { body: Buffer; contentType: string } {
  const boundary = opts.boundary ?? '------------------------computalot0123456789';
  const head =
    `--${boundary}\r\nContent-Disposition: form-data; name="${opts.field ?? 'file'}"; ` +
    `filename="${opts.filename ?? 'code.tar.gz'}"\r\nContent-Type: application/octet-stream\r\n\r\n`;
  const body = Buffer.concat([Buffer.from(head), file, Buffer.from(`\r\n--${boundary}--\r\n`)]);
  return { body, contentType: `multipart/form-data; boundary=${boundary}` };
}

export type MakeArchive =
  | ({ tool: 'gnu' | 'bsd' | 'git'; files: TreeSpec } & ToolOptions)
  | ({ tool: 'python'; entries: PyEntry[] } & PyOptions);

/** One entry point for all builders: `await makeArchive({ tool: 'python', entries: [...], gzip: true })`. */
export async function makeArchive(spec: MakeArchive): Promise<string> {
  if (spec.tool === 'python') return pythonTar(spec.entries, spec);
  const dir = await makeTree(spec.files);
  if (spec.tool === 'gnu') return gnuTar(dir, spec);
  if (spec.tool === 'bsd') return bsdTar(dir, spec);
  return gitArchive(dir, spec);
}

/** A body that sends `head` and then never ends (to prove a limit stops the intake at once). */
export function stallingStream(head: Buffer): Readable {
  let sent = false;
  return new Readable({
    read() {
      if (!sent) this.push(head);
      sent = true;
    },
  });
}

/** A valid tar header announcing a 4 GiB file, then endless zeros: a body that is a tar and never ends. */
export function endlessTarStream(): Readable {
  const header = Buffer.alloc(512);
  new Header({ path: 'endless.bin', mode: 0o644, size: 4 * 1024 ** 3 - 1, type: 'File', mtime: new Date(0) }).encode(header, 0);
  let sentHeader = false;
  const zeros = Buffer.alloc(64 * 1024);
  return new Readable({
    read() {
      this.push(sentHeader ? zeros : header);
      sentHeader = true;
    },
  });
}

/** A body of endless copies of `chunk`. */
export function endlessStream(chunk: Buffer = Buffer.alloc(64 * 1024, 7)): Readable {
  return new Readable({
    read() {
      this.push(chunk);
    },
  });
}
