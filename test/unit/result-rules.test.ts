/**
 * SPEC §7 result extraction: result file (1.0), last stdout JSON object (0.5, result_from_stdout), nothing
 * (0, no_result), an invalid result file (result_file_invalid), over 10 MiB (result_too_large); success is
 * exit 0; and progress lines.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { extractResult, MAX_RESULT_BYTES, parseProgressLines, type ResultInput } from '../../src/core/result-rules.js';

const input = (extra: Partial<ResultInput>): ResultInput => ({
  resultFileText: null, resultFileBytes: 0, stdoutTail: '', exitCode: 0, ...extra,
});
const file = (text: string, extra: Partial<ResultInput> = {}) =>
  extractResult(input({ resultFileText: text, resultFileBytes: Buffer.byteLength(text), ...extra }));

describe('extractResult', () => {
  it('a JSON value in the result file: quality 1.0, no warnings, success', () => {
    assert.deepEqual(file('{"score": 0.9}\n'), { result: { score: 0.9 }, result_quality: 1, result_warnings: [], success: true });
  });

  it('any JSON value counts, not only objects, and a BOM is ignored', () => {
    assert.equal(file('42').result, 42);
    assert.deepEqual(file('[1,2]').result, [1, 2]);
    assert.equal(file('"text"').result, 'text');
    assert.equal(file('null').result_quality, 1);
    assert.deepEqual(file('\uFEFF{"a":1}').result, { a: 1 });
  });

  it('the file wins over stdout', () => {
    assert.deepEqual(file('{"from":"file"}', { stdoutTail: '{"from":"stdout"}\n' }).result, { from: 'file' });
  });

  it('otherwise the last stdout line that is a JSON object: quality 0.5, result_from_stdout', () => {
    const stdout = 'starting\n{"step": 1}\nlog line\n{"score": 2}\n[1, 2, 3]\n"str"\n  \n';
    assert.deepEqual(extractResult(input({ stdoutTail: stdout })), {
      result: { score: 2 }, result_quality: 0.5, result_warnings: ['result_from_stdout'], success: true,
    });
  });

  it('skips a broken last line and handles CRLF', () => {
    assert.deepEqual(extractResult(input({ stdoutTail: '{"ok": true}\r\n{"cut": ' })).result, { ok: true });
    assert.deepEqual(extractResult(input({ stdoutTail: '{"a": 1}\r\n' })).result, { a: 1 });
  });

  it('nothing: null, 0, no_result — and still a success on exit 0', () => {
    assert.deepEqual(extractResult(input({ stdoutTail: 'done\n[1]\n' })), {
      result: null, result_quality: 0, result_warnings: ['no_result'], success: true,
    });
  });

  it('an empty result file counts as absent', () => {
    assert.deepEqual(file('  \n', { stdoutTail: '{"a":1}' }).result_warnings, ['result_from_stdout']);
  });

  it('an invalid result file falls through to stdout with result_file_invalid', () => {
    assert.deepEqual(file('{"broken": ', { stdoutTail: '{"a":1}\n' }), {
      result: { a: 1 }, result_quality: 0.5, result_warnings: ['result_file_invalid', 'result_from_stdout'], success: true,
    });
    assert.deepEqual(file('nope').result_warnings, ['result_file_invalid', 'no_result']);
  });

  it('a result nested deeper than 128 levels counts as invalid (storing it would overflow the stack)', () => {
    const deep = `${'['.repeat(5000)}1${']'.repeat(5000)}`;
    assert.deepEqual(file(deep, { stdoutTail: `{"a": ${deep}}\n{"b":1}\n` }).result_warnings, ['result_file_invalid', 'result_from_stdout']);
    assert.deepEqual(file(deep, { stdoutTail: `{"b":1}\n{"a": ${deep}}\n` }).result, { b: 1 }, 'a too-deep last line is skipped like a broken one');
    assert.equal(file(`${'['.repeat(127)}1${']'.repeat(127)}`).result_quality, 1);
  });

  it('a result file over 10 MiB fails the attempt with result_too_large', () => {
    const out = extractResult(input({ resultFileText: null, resultFileBytes: MAX_RESULT_BYTES + 1, stdoutTail: '{"a":1}' }));
    assert.equal(out.success, false);
    assert.equal(out.result, null);
    assert.equal(out.result_quality, 0);
    assert.equal(out.error?.code, 'result_too_large');
    assert.match(out.error!.message, /over the limit of 10\.0 MiB/);
    assert.equal(extractResult(input({ resultFileText: '1', resultFileBytes: MAX_RESULT_BYTES })).success, true);
  });

  it('a non-zero exit fails even with a result, which is still reported', () => {
    const out = file('{"partial": true}', { exitCode: 3 });
    assert.equal(out.success, false);
    assert.deepEqual(out.result, { partial: true });
    assert.deepEqual(out.error, { code: 'nonzero_exit', message: 'runner_command exited with code 3; see the task\'s output for why.' });
  });

  it('no exit code (killed): fails without an error of its own', () => {
    const out = extractResult(input({ exitCode: null }));
    assert.equal(out.success, false);
    assert.equal(out.error, undefined);
  });
});

describe('parseProgressLines', () => {
  it('the last valid line wins', () => {
    assert.deepEqual(parseProgressLines('{"progress": 0.1, "message": "a"}\n{"progress": 0.4, "message": "loading"}\n'), { progress: 0.4, message: 'loading' });
  });

  it('clamps to 0..1 and drops a non-string message', () => {
    assert.deepEqual(parseProgressLines('{"progress": 1.7}'), { progress: 1 });
    assert.deepEqual(parseProgressLines('{"progress": -2, "message": 5}'), { progress: 0 });
  });

  it('skips half-written and invalid lines, falling back to the one before', () => {
    assert.deepEqual(parseProgressLines('{"progress": 0.5}\n{"progress": "x"}\n{"progress": 0.9, "mess'), { progress: 0.5 });
  });

  it('null when nothing is valid', () => {
    assert.equal(parseProgressLines(''), null);
    assert.equal(parseProgressLines('hello\n[0.5]\n{"message": "no number"}\n'), null);
  });
});
