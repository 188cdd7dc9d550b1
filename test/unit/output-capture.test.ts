/**
 * What an attempt keeps of stdout for SPEC §7's fallback result: the tail, and the last object-like line
 * of the whole stream however long ago it was printed or however long it is (runtime/output-capture.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { lastJsonObjectLine } from '../../src/core/result-rules.js';
import { LastObjectLine, StdoutCapture, TailBuffer } from '../../src/runtime/output-capture.js';

/** Feeds `text` in chunks of `size` bytes (lines and characters cut anywhere). */
function feed<T extends { push(chunk: Buffer): void }>(into: T, text: string, size = 7): T {
  const bytes = Buffer.from(text);
  for (let i = 0; i < bytes.length; i += size) into.push(bytes.subarray(i, i + size));
  return into;
}

describe('TailBuffer', () => {
  it('keeps the last cap bytes', () => {
    const tail = feed(new TailBuffer(10), 'abcdefghijklmnopqrstuvwxyz', 3);
    assert.equal(tail.text(), 'qrstuvwxyz');
    assert.equal(tail.length, 10);
  });
});

describe('LastObjectLine', () => {
  it('finds the last "{…}" line, trimmed, across chunk boundaries, and an unterminated last line', () => {
    assert.deepEqual(feed(new LastObjectLine(100), 'log\n  {"a": 1}  \nmore log\n{not closed\n').last(), { text: '{"a": 1}', start: 6 });
    assert.equal(feed(new LastObjectLine(100), 'x\n{"b": 2}').last()?.text, '{"b": 2}');
    assert.equal(feed(new LastObjectLine(100), 'a {"c": 3}\n').last(), null, 'a line must start with "{"');
  });

  it('drops a line over max bytes and keeps the one before', () => {
    const line = feed(new LastObjectLine(20), `{"ok": true}\n{"big": "${'x'.repeat(100)}"}\nplain\n`, 13);
    assert.equal(line.last()?.text, '{"ok": true}');
  });
});

describe('StdoutCapture', () => {
  const result = (text: string, chunk = 4096) => lastJsonObjectLine(feed(new StdoutCapture(64 * 1024, 10 * 1024 * 1024), text, chunk).text());

  it('finds a result followed by more than the tail of plain log', () => {
    assert.deepEqual(result(`{"ok": 1}\n${'noise line\n'.repeat(9000)}`), { ok: 1 });
  });

  it('finds a result line longer than the tail', () => {
    const big = { s: 'y'.repeat(70_000) };
    assert.deepEqual(result(`start\n${JSON.stringify(big)}\n`), big);
    assert.deepEqual(result(JSON.stringify(big)), big, 'unterminated');
  });

  it('reads lines from the end in stream order: a later result in the tail wins, a broken last one falls back', () => {
    assert.deepEqual(result(`{"old": 1}\n${'n\n'.repeat(40_000)}{"new": 2}\nbye\n`), { new: 2 });
    assert.deepEqual(result('{"a": 1}\n{"b": 2}\n{"broken": \n'), { b: 2 });
  });

  it('is the plain tail when the last object-like line is inside it', () => {
    const text = 'x\n{"a": 1}\ny\n';
    assert.equal(feed(new StdoutCapture(64, 1024), text).text(), text);
  });
});
