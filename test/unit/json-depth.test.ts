/** core/json-depth.ts: where a JSON value first nests too deep, found without recursion. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_JSON_DEPTH, tooDeepAt } from '../../src/core/json-depth.js';

describe('tooDeepAt', () => {
  it('counts the top-level value as level 1, and only objects and arrays as levels', () => {
    assert.equal(tooDeepAt(1, 0), null);
    assert.equal(tooDeepAt({ a: 1 }, 1), null);
    assert.equal(tooDeepAt({ a: {} }, 1), '/a');
    assert.equal(tooDeepAt([[[1]]], 3), null);
    assert.equal(tooDeepAt([[[1]]], 2), '/0/0');
  });

  it('names the first too-deep value with escaped keys', () => {
    assert.equal(tooDeepAt({ ok: { x: 1 }, 'a/b': { 'c~d': { e: [] } } }, 3), '/a~1b/c~0d/e');
  });

  it('handles values far deeper than the stack allows recursion for', () => {
    const deep = JSON.parse(`${'['.repeat(100_000)}${']'.repeat(100_000)}`);
    const path = tooDeepAt(deep);
    assert.equal(path, '/0'.repeat(MAX_JSON_DEPTH));
    let ok: unknown = 1;
    for (let i = 0; i < MAX_JSON_DEPTH; i += 1) ok = [ok];
    assert.equal(tooDeepAt(ok), null);
  });
});
