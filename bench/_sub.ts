import { makeAccount } from '../test/helpers/http.js';
import { pushFixture } from '../test/helpers/jobs.js';
import { benchServer, benchPgUrl } from './lib.js';
const pgUrl = process.argv[2] === 'sqlite' ? null : await benchPgUrl();
const { server } = await benchServer({ COMPUTALOT_LOCAL_WORKERS: '0', ...(pgUrl ? { DATABASE_URL: pgUrl } : {}) });
const acc = await makeAccount(server.url, 'bench');
await pushFixture(server.url, acc.member, 'p');
const headers = { authorization: `Bearer ${acc.member}`, 'content-type': 'application/json' };
const body = { project: 'p', runner_command: ['true'], payload: { n: 1 } };
const batch = JSON.stringify({ jobs: Array.from({ length: 1000 }, () => body) });
const t0 = performance.now(); let jobs = 0; const lat: number[] = [];
while (performance.now() - t0 < 8_000) {
  const t1 = performance.now();
  const res = await fetch(`${server.url}/api/v1/jobs/batch`, { method: 'POST', headers, body: batch });
  const answer = await res.json() as { jobs: Array<{ id?: string }> };
  lat.push(performance.now() - t1);
  jobs += answer.jobs.filter((j) => j.id).length;
}
lat.sort((a, b) => a - b);
console.log(`${Math.round(jobs / ((performance.now() - t0) / 1000))} jobs/s, request p50 ${lat[lat.length >> 1]!.toFixed(1)} ms`);
await server.stop();
