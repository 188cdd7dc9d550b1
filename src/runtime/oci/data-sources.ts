/**
 * Manifest `data_sources` (SPEC §4): immutable inputs fetched once per worker, checked against their
 * `sha256`, and mounted read-only at `mount`.
 *
 * - `url` sources are downloaded (streamed to a temp file while hashing) into `<workDir>/oci/data/<sha256>`;
 *   a file already there was checked when it was stored, so later revisions and restarts reuse it.
 * - A digest mismatch fails preparation (phase `fetch`) naming the source, the expected and the actual
 *   digest, and stores nothing; so does a download over the size limit or past the time limit.
 * - `artifact` sources (files uploaded to the server) are not offered by this server yet: preparation fails
 *   saying so rather than mounting nothing.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { NormalizedManifest } from '../../protocol/manifest.js';
import { RuntimeError } from '../port.js';
import { dataDir, dataFile } from './host-dirs.js';
import type { Mount } from './sandbox.js';

type DataSource = NormalizedManifest['data_sources'][number];

const inflight = new Map<string, Promise<void>>();

async function download(source: DataSource, target: string, signal: AbortSignal, maxBytes: number): Promise<void> {
  const tmp = `${target}.tmp-${randomBytes(4).toString('hex')}`;
  const hash = createHash('sha256');
  try {
    const response = await fetch(source.url!, { signal, redirect: 'follow' });
    if (!response.ok || !response.body) {
      throw new RuntimeError('data_source_fetch_failed', `data_sources "${source.name}": GET ${source.url} answered ${response.status}; fix the url or make it reachable from the worker.`, 'fetch');
    }
    let bytes = 0;
    const hashing = new Transform({
      transform(chunk: Buffer, _enc, done) {
        bytes += chunk.length;
        if (bytes > maxBytes) {
          done(new RuntimeError('data_source_too_large', `data_sources "${source.name}": ${source.url} is larger than ${maxBytes} bytes, the most a worker downloads.`, 'fetch'));
          return;
        }
        hash.update(chunk);
        done(null, chunk);
      },
    });
    await pipeline(Readable.fromWeb(response.body as import('node:stream/web').ReadableStream), hashing, createWriteStream(tmp, { mode: 0o444 }));
    const actual = hash.digest('hex');
    if (actual !== source.sha256.toLowerCase()) {
      throw new RuntimeError('data_source_digest_mismatch', `data_sources "${source.name}": ${source.url} has sha256 ${actual}, not the ${source.sha256} the manifest expects; fix sha256 or the url.`, 'fetch');
    }
    await rename(tmp, target);
  } catch (error) {
    await rm(tmp, { force: true });
    if (error instanceof RuntimeError) throw error;
    throw new RuntimeError('data_source_fetch_failed', `data_sources "${source.name}": could not download ${source.url}: ${(error as Error).message}`, 'fetch');
  }
}

/** Fetches what is missing and returns the read-only mounts. */
export async function prepareDataSources(workDir: string, sources: NormalizedManifest['data_sources'], onLog: (text: string) => void, signal: AbortSignal, maxBytes: number): Promise<Mount[]> {
  const mounts: Mount[] = [];
  if (sources.length > 0) await mkdir(dataDir(workDir), { recursive: true });
  for (const source of sources) {
    if (!source.url) {
      throw new RuntimeError('data_source_unsupported', `data_sources "${source.name}": artifact sources are not offered by this server yet; give the source a url (with its sha256) instead.`, 'fetch');
    }
    const target = dataFile(workDir, source.sha256);
    if (!(await stat(target).then((s) => s.isFile(), () => false))) {
      let pending = inflight.get(target);
      if (!pending) {
        onLog(`Fetching data source ${source.name} from ${source.url}\n`);
        pending = download(source, target, signal, maxBytes).finally(() => inflight.delete(target));
        inflight.set(target, pending);
      }
      await pending;
    }
    mounts.push({ host: target, container: source.mount, readOnly: true });
  }
  return mounts;
}
