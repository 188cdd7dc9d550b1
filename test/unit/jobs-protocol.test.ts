/**
 * SPEC §6 submit body: every field's limits and defaults, unknown fields refused, problems located by
 * RFC 6901 JSON paths; the batch body accepts any items (each is validated on its own).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Value } from '@sinclair/typebox/value';
import type { Problem } from '../../src/core/errors.js';
import { BatchSubmitBody, JobObject, ResultsObject, SubmitJobBody, TaskObject, validateSubmit } from '../../src/protocol/jobs.js';

const problemsOf = (body: unknown): Problem[] => {
  const checked = validateSubmit(body);
  assert.equal(checked.ok, false, `accepted: ${JSON.stringify(body)}`);
  return checked.ok ? [] : checked.problems;
};

function expectProblem(body: Record<string, unknown>, path: string, message: RegExp): void {
  const problems = problemsOf({ project: 'demo', ...body });
  const found = problems.find((problem) => problem.path === path);
  assert.ok(found, `no problem at "${path}": ${JSON.stringify(problems)}`);
  assert.match(found.message, message);
}

const accepts = (body: Record<string, unknown>) => {
  const checked = validateSubmit({ project: 'demo', ...body });
  assert.ok(checked.ok, JSON.stringify(checked.ok ? null : checked.problems));
  return checked.value;
};

describe('submit body', () => {
  it('fills every default of the smallest body', () => {
    const value = accepts({});
    assert.deepEqual(value, {
      project: 'demo', type: 'structured_runner', payload: {}, timeout_s: 600, profile: 'cpu', priority: 0,
      retries: { max_attempts: 3, backoff_s: 2 },
    });
  });

  it('does not change the caller\'s object when filling defaults', () => {
    const body = { project: 'demo', retries: { max_attempts: 5 } };
    assert.deepEqual(accepts(body).retries, { max_attempts: 5, backoff_s: 2 });
    assert.deepEqual(body.retries, { max_attempts: 5 });
  });

  it('accepts every field at once', () => {
    accepts({
      type: 'structured_runner', runner_command: ['python', 'job.py'], payload: { xs: [1, 2] }, timeout_s: 86_400,
      fan_out: { by: 'xs' }, batch_size: 2, profile: 'gpu', requirements: { cpu: 0.5, memory_gb: 2, gpu_count: 1, storage_gb: 10 },
      retries: { max_attempts: 20, backoff_s: 0 }, queue_timeout_s: 60, checkpoint: { enabled: true },
      idempotency_key: 'k'.repeat(200), priority: -100, env: { MY_VAR: 'x' }, meta: { run: 1 }, variant: 'b',
    });
    accepts({ type: 'sweep', sweep: { parameters: { lr: [0.1, 0.01] }, objective: { key: 'loss', goal: 'minimize' } } });
    accepts({ type: 'map_reduce', fan_out: { items: [1] }, reduce: { runner_command: ['r'], payload: { a: 1 } } });
    accepts({ type: 'benchmark', strategies: { a: { payload: { n: 1 } }, b: { runner_command: ['b'] } }, repeats: 1000, objective: { key: 't', goal: 'maximize' } });
  });

  it('requires project', () => assert.deepEqual(problemsOf({}), [{ path: '/project', message: 'is required' }]));
  it('refuses a body that is not an object', () => {
    assert.deepEqual(problemsOf([1]), [{ path: '', message: 'must be a JSON object: a job submission (SPEC §6)' }]);
  });

  it('refuses unknown top-level fields, naming them', () => {
    expectProblem({ timeout: 5 }, '/timeout', /not a field of a job submission/);
    expectProblem({ 'a/b': 1 }, '/a~1b', /not a field/);
  });

  it('refuses unknown nested keys too', () => {
    expectProblem({ retries: { max_attempt: 2 } }, '/retries/max_attempt', /not an allowed key/);
    expectProblem({ requirements: { gpus: 1 } }, '/requirements/gpus', /not an allowed key/);
  });

  it('checks type, profile and objective goal against their values', () => {
    expectProblem({ type: 'batch' }, '/type', /one of "structured_runner", "sweep", "map_reduce", "benchmark"/);
    expectProblem({ profile: 'tpu' }, '/profile', /one of "cpu", "gpu"/);
    expectProblem({ type: 'benchmark', objective: { key: 'x', goal: 'max' } }, '/objective/goal', /"maximize", "minimize"/);
  });

  it('checks runner_command is a non-empty string array', () => {
    expectProblem({ runner_command: [] }, '/runner_command', /non-empty array/);
    expectProblem({ runner_command: 'python job.py' }, '/runner_command', /non-empty array/);
    expectProblem({ runner_command: ['python', 1] }, '/runner_command/1', /must be a string/);
  });

  it('checks payload is an object', () => expectProblem({ payload: [1] }, '/payload', /JSON object/));

  it('bounds timeout_s to 1..86400 (integer)', () => {
    expectProblem({ timeout_s: 0 }, '/timeout_s', /between 1 and 86400/);
    expectProblem({ timeout_s: 86_401 }, '/timeout_s', /between 1 and 86400/);
    expectProblem({ timeout_s: 1.5 }, '/timeout_s', /integer/);
  });

  it('bounds retries, priority, batch_size, repeats and idempotency_key', () => {
    expectProblem({ retries: { max_attempts: 21 } }, '/retries/max_attempts', /between 1 and 20/);
    expectProblem({ retries: { backoff_s: -1 } }, '/retries/backoff_s', /between 0 and 3600/);
    expectProblem({ priority: 101 }, '/priority', /between -100 and 100/);
    expectProblem({ priority: 0.5 }, '/priority', /integer/);
    expectProblem({ batch_size: 0 }, '/batch_size', /between 1 and 100000/);
    expectProblem({ repeats: 1001 }, '/repeats', /between 1 and 1000/);
    expectProblem({ idempotency_key: 'k'.repeat(201) }, '/idempotency_key', /at most 200 characters/);
    expectProblem({ queue_timeout_s: 0 }, '/queue_timeout_s', /an integer between 1 and 604800 or null/);
    expectProblem({ requirements: { cpu: 0 } }, '/requirements/cpu', /above 0/);
  });

  it('takes fan_out as exactly one of by or items', () => {
    expectProblem({ fan_out: {} }, '/fan_out', /exactly one of/);
    expectProblem({ fan_out: { by: 'a', items: [] } }, '/fan_out', /exactly one of/);
    expectProblem({ fan_out: { items: 'abc' } }, '/fan_out/items', /must be an array/);
    expectProblem({ fan_out: { by: '' } }, '/fan_out/by', /must not be empty/);
    expectProblem({ fan_out: { key: 'a' } }, '/fan_out/key', /not an allowed key/);
  });

  it('checks env names and values', () => {
    expectProblem({ env: { 'BAD-NAME': 'x' } }, '/env/BAD-NAME', /letters, digits and "_"/);
    expectProblem({ env: { GOOD: 1 } }, '/env/GOOD', /must be a string/);
  });

  it('checks sweep parameters and strategies', () => {
    expectProblem({ type: 'sweep', sweep: { parameters: {} } }, '/sweep/parameters', /at least one parameter/);
    expectProblem({ type: 'sweep', sweep: { parameters: { lr: [] } } }, '/sweep/parameters/lr', /non-empty array/);
    expectProblem({ type: 'sweep', sweep: {} }, '/sweep/parameters', /is required/);
    expectProblem({ type: 'benchmark', strategies: {} }, '/strategies', /at least one strategy, each under a non-empty name/);
    expectProblem({ type: 'benchmark', strategies: { a: { cmd: [] } } }, '/strategies/a/cmd', /not an allowed key/);
  });

  it('reports several problems at once, one per path', () => {
    const problems = problemsOf({ timeout_s: 0, priority: 'high' });
    assert.deepEqual(problems.map((p) => p.path).sort(), ['/priority', '/project', '/timeout_s']);
  });

  it('keeps payload, meta and variant as given', () => {
    const value = accepts({ payload: { nested: { deep: [1, { x: null }] } }, meta: [1, 'two'], variant: null });
    assert.deepEqual(value.payload, { nested: { deep: [1, { x: null }] } });
    assert.deepEqual(value.meta, [1, 'two']);
    assert.equal(value.variant, null);
  });
});

describe('batch body and answers', () => {
  it('accepts 1..1000 items of any shape', () => {
    assert.ok(Value.Check(BatchSubmitBody, { jobs: [{}, 5, null] }));
    assert.ok(!Value.Check(BatchSubmitBody, { jobs: [] }));
    assert.ok(!Value.Check(BatchSubmitBody, { jobs: Array.from({ length: 1001 }, () => ({})) }));
    assert.ok(!Value.Check(BatchSubmitBody, { jobs: [{}], extra: 1 }));
  });

  it('has the public field names of job, task and results', () => {
    const keys = (schema: { properties: Record<string, unknown> }) => Object.keys(schema.properties);
    for (const name of ['id', 'type', 'project', 'content_hash', 'status', 'status_reason', 'error', 'recommended_action', 'created_at', 'started_at', 'finished_at', 'timeout_s', 'tasks_total', 'tasks', 'progress', 'meta', 'variant']) {
      assert.ok(keys(JobObject).includes(name), name);
    }
    assert.deepEqual(Object.keys(JobObject.properties.tasks.properties), ['queued', 'preparing', 'running', 'completed', 'failed', 'cancelled']);
    for (const name of ['id', 'index', 'status', 'status_reason', 'attempt', 'attempts', 'exit_code', 'error', 'output', 'latest_progress', 'live_feedback', 'item', 'result', 'result_quality', 'result_warnings', 'started_at', 'finished_at', 'duration_ms', 'cold_start', 'node']) {
      assert.ok(keys(TaskObject).includes(name), name);
    }
    assert.deepEqual(keys(ResultsObject), ['job_id', 'status', 'completeness', 'summary', 'aggregate_result', 'results', 'meta', 'variant', 'result_persisted', 'output_persisted']);
    assert.deepEqual(Object.keys(ResultsObject.properties.summary.properties), ['tasks_total', 'completed', 'failed', 'cancelled', 'duration_s']);
    assert.deepEqual(Object.keys(ResultsObject.properties.results.items.properties), ['index', 'item', 'status', 'result', 'result_quality', 'result_warnings', 'error']);
    assert.ok(SubmitJobBody.additionalProperties === false);
  });
});
