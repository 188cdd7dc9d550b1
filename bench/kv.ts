/**
 * KV operations per second over HTTP (autocannon, 10 connections, 10 s per case) on SQLite and
 * PostgreSQL, side by side with Redis (redis-benchmark, same concurrency) on a local redis-server,
 * the store a user would otherwise pick for shared state between tasks.
 */
import { execFileSync, spawn } from 'node:child_process';
import autocannon from 'autocannon';
import { setTimeout as sleep } from 'node:timers/promises';
import { call, makeAccount } from '../test/helpers/http.js';
import { benchServer, record, table, benchPgUrl } from './lib.js';

const DURATION_S = 10;
const CONNECTIONS = 10;
const VALUE = JSON.stringify({ score: 0.93, by: 'run-7', tags: ['a', 'b'] });

async function cannon(opts: autocannon.Options): Promise<autocannon.Result> {
  return autocannon({ duration: DURATION_S, connections: CONNECTIONS, ...opts });
}

async function httpRows(store: string, env: Record<string, string>) {
  const { server } = await benchServer(env);
  try {
    const acc = await makeAccount(server.url, 'bench');
    await call(server.url, 'POST', '/api/v1/projects', { token: acc.member, json: { name: 'kv' } });
    const headers = { authorization: `Bearer ${acc.member}`, 'content-type': 'application/json' };
    const base = `${server.url}/api/v1/projects/kv/kv`;
    await call(server.url, 'PUT', '/api/v1/projects/kv/kv/hot', { token: acc.member, json: JSON.parse(VALUE) });
    let n = 0;
    const put = await cannon({
      url: base, headers, method: 'PUT',
      requests: [{ setupRequest: (req) => ({ ...req, path: `/api/v1/projects/kv/kv/key-${(n += 1) % 1000}`, body: VALUE }) }],
    });
    const get = await cannon({ url: `${base}/hot`, headers });
    const rows = [] as Array<Array<string | number>>;
    for (const [op, r] of [['PUT (1,000 keys)', put], ['GET (one key)', get]] as const) {
      const errors = r.non2xx + r.errors;
      rows.push([`computalot HTTP, ${store}`, op, Math.round(r.requests.average), r.latency.p50, r.latency.p99, errors]);
    }
    return rows;
  } finally {
    await server.stop();
  }
}

async function redisRows(): Promise<Array<Array<string | number>>> {
  const port = '6391';
  const redis = spawn('redis-server', ['--port', port, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  try {
    await sleep(500);
    const out = execFileSync('redis-benchmark', ['-p', port, '-c', String(CONNECTIONS), '-n', '200000', '-t', 'set,get', '-d', String(VALUE.length), '-r', '1000', '--csv']).toString();
    return out.trim().split('\n').slice(1).map((line) => {
      const cells = line.split(',').map((c) => c.replace(/"/g, ''));
      return ['redis-server (RESP, no persistence)', cells[0] ?? '', Math.round(Number(cells[1])), cells[5] ?? '', cells[7] ?? '', 0];
    });
  } finally {
    redis.kill();
  }
}

export async function main(): Promise<void> {
  const rows = await httpRows('sqlite', {});
  const url = await benchPgUrl();
  if (url) rows.push(...(await httpRows('postgres', { DATABASE_URL: url })));
  rows.push(...(await redisRows()));
  await record('KV operations per second', 'npm run bench -- kv', [
    table(['system', 'operation', 'ops/s', 'p50 ms', 'p99 ms', 'errors'], rows),
    '',
    `autocannon: ${CONNECTIONS} connections, ${DURATION_S} s per case, bearer auth and JSON bodies; every HTTP write is a durable`,
    'transaction with its kv.updated event. redis-benchmark: same concurrency, 200,000 requests per case, in memory.',
  ].join('\n'));
}
