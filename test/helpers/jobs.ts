/** Helpers for job tests: push the fixture project, submit, and wait for a job to end (bounded polling). */
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { call } from './http.js';
import { ROOT } from './server.js';

export { alive } from './processes.js';

export const FINISHED = ['completed', 'partial', 'failed', 'cancelled'];

export async function pushFixture(base: string, token: string, project: string): Promise<void> {
  await call(base, 'POST', '/api/v1/projects', { token, json: { name: project } });
  const out = join(tmpdir(), `computalot-jobs-fixture-${process.pid}.tar.gz`);
  execFileSync('tar', ['czf', out, '-C', join(ROOT, 'test/fixtures/jobs-project'), '.']);
  const res = await call(base, 'POST', `/api/v1/projects/${project}/push`, { token, body: await readFile(out) });
  if (res.status !== 201 && res.status !== 200) throw new Error(`push: ${res.status} ${res.text}`);
}

export async function submit(base: string, token: string, body: Record<string, unknown>) {
  const res = await call(base, 'POST', '/api/v1/jobs', { token, json: body });
  if (res.status !== 201) throw new Error(`submit: ${res.status} ${res.text}`);
  return res.body as { id: string; status: string };
}

/** Polls GET /jobs/:id until `until` holds (default: finished); fails after `timeoutMs`. */
export async function waitJob(base: string, token: string, id: string, until: (job: any) => boolean = (j) => FINISHED.includes(j.status), timeoutMs = 60_000, pollMs = 50) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await call(base, 'GET', `/api/v1/jobs/${id}`, { token });
    if (until(res.body)) return res.body;
    if (Date.now() > deadline) throw new Error(`job ${id} did not get there in ${timeoutMs} ms: ${res.text}`);
    await sleep(pollMs);
  }
}

export async function results(base: string, token: string, id: string) {
  return (await call(base, 'GET', `/api/v1/results/${id}`, { token })).body;
}

/** Every task of the job, in index order, following next_cursor (a page holds 50 by default). */
export async function tasks(base: string, token: string, id: string) {
  const all: any[] = [];
  let cursor: string | null = null;
  do {
    const query: string = cursor ? `?limit=500&cursor=${encodeURIComponent(cursor)}` : '?limit=500';
    const body = (await call(base, 'GET', `/api/v1/jobs/${id}/tasks${query}`, { token })).body;
    all.push(...(body.tasks as any[]));
    cursor = body.next_cursor;
  } while (cursor);
  return all;
}
