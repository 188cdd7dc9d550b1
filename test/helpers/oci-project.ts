/**
 * Projects for the oci tests, written to a temp folder and pushed as a real tarball: the fixture
 * `test/fixtures/oci-project` or an example, with files replaced or added and the manifest changed.
 */
import { execFileSync } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { call } from './http.js';
import { ROOT } from './server.js';

export interface ProjectChanges {
  /** The source folder, relative to the repo (default the oci fixture). */
  from?: string;
  /** Merged over the manifest's top level (`runtime` is merged one level deeper). */
  manifest?: Record<string, any>;
  files?: Record<string, string>;
}

export async function projectTarball(changes: ProjectChanges = {}): Promise<Buffer> {
  const dir = await mkdtemp(join(tmpdir(), 'computalot-oci-src-'));
  try {
    await cp(join(ROOT, changes.from ?? 'test/fixtures/oci-project'), dir, { recursive: true });
    const manifestPath = join(dir, 'computalot.project.json');
    const manifest = JSON.parse(await readFile(manifestPath, 'utf8'));
    const { runtime, ...rest } = changes.manifest ?? {};
    Object.assign(manifest, rest);
    if (runtime) manifest.runtime = { ...manifest.runtime, ...runtime };
    await writeFile(manifestPath, JSON.stringify(manifest, null, 2));
    for (const [name, text] of Object.entries(changes.files ?? {})) await writeFile(join(dir, name), text);
    const out = join(dir, '..', `${dir.split('/').pop()}.tar.gz`);
    execFileSync('tar', ['czf', out, '-C', dir, '.']);
    const body = await readFile(out);
    await rm(out, { force: true });
    return body;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Creates the project (if new) and pushes; returns the push answer. */
export async function pushProject(base: string, token: string, name: string, changes: ProjectChanges = {}): Promise<any> {
  await call(base, 'POST', '/api/v1/projects', { token, json: { name } });
  const res = await call(base, 'POST', `/api/v1/projects/${name}/push`, { token, body: await projectTarball(changes) });
  if (res.status !== 201 && res.status !== 200) throw new Error(`push: ${res.status} ${res.text}`);
  return res.body;
}

export async function details(base: string, token: string, name: string): Promise<any> {
  return (await call(base, 'GET', `/api/v1/projects/${name}/status/details`, { token })).body;
}

/** Polls /status/details until `until` holds; fails after `timeoutMs`. */
export async function waitDetails(base: string, token: string, name: string, until: (d: any) => boolean, timeoutMs = 120_000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const d = await details(base, token, name);
    if (until(d)) return d;
    if (Date.now() > deadline) throw new Error(`${name} did not get there in ${timeoutMs} ms: ${JSON.stringify(d)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
