/**
 * The submit schema's defaults, filled by a function built once from the schema (src/protocol/defaults.ts),
 * must be exactly what TypeBox's `Value.Default` fills, and never change the body the client sent.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { defaultsFiller } from '../../src/protocol/defaults.js';
import { SubmitJobBody, validateSubmit } from '../../src/protocol/jobs.js';

const bodies: Array<Record<string, unknown>> = [
  { project: 'p' },
  { project: 'p', runner_command: ['true'], payload: { n: 1, nested: { a: [1, 2] } } },
  { project: 'p', type: 'sweep', sweep: { parameters: { lr: [0.1, 0.2] } }, retries: {} },
  { project: 'p', retries: { max_attempts: 5 } },
  { project: 'p', retries: { backoff_s: 0 }, timeout_s: 5, profile: 'gpu', priority: -3, payload: {} },
  { project: 'p', type: 'map_reduce', fan_out: { by: 'xs' }, payload: { xs: [1, 2, 3] }, reduce: { payload: { k: 1 } } },
  { project: 'p', type: 'benchmark', strategies: { a: { payload: { x: 1 } } }, repeats: 2, meta: { m: null }, variant: 'v' },
];

describe('submit defaults', () => {
  it('fills exactly what Value.Default fills', () => {
    const fill = defaultsFiller(SubmitJobBody);
    for (const body of bodies) {
      assert.ok(Value.Check(SubmitJobBody, body), JSON.stringify(body));
      assert.deepEqual(fill(body), Value.Default(SubmitJobBody, Value.Clone(body)), JSON.stringify(body));
    }
  });

  it('leaves the body as the client sent it, and shares no default object between submits', () => {
    const body = { project: 'p', retries: { max_attempts: 4 } };
    const before = structuredClone(body);
    const a = validateSubmit(body);
    const b = validateSubmit({ project: 'p' });
    assert.deepEqual(body, before, 'not changed in place');
    assert.ok(a.ok && b.ok);
    assert.deepEqual(a.value.retries, { max_attempts: 4, backoff_s: 2 });
    const c = validateSubmit({ project: 'p' });
    assert.ok(c.ok);
    (b.value.payload as Record<string, unknown>).x = 1;
    assert.deepEqual(c.value.payload, {}, 'each submit gets its own default payload');
  });

  it('refuses, when built, a schema with a default it would not fill', () => {
    const inArray = Type.Object({ xs: Type.Array(Type.Object({ a: Type.Integer({ default: 1 }) })) });
    assert.throws(() => defaultsFiller(inArray), /a default below "xs"/);
    const inRecord = Type.Object({ r: Type.Record(Type.String(), Type.Object({ a: Type.Integer({ default: 1 }) })) });
    assert.throws(() => defaultsFiller(inRecord), /a default below "r"/);
  });
});
