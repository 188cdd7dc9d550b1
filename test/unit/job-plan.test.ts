/**
 * SPEC §6 fan-out, sweep, map_reduce and benchmark expansion: payloads, items, task order, batch_size
 * slices, the 100,000-task limit, runner_command resolution, and every problem with its JSON path.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isAppError, type Problem } from '../../src/core/errors.js';
import { MAX_JOB_PAYLOAD_BYTES, MAX_TASKS_PER_JOB, planJob, reducePayload, type PlanContext } from '../../src/core/job-plan.js';
import { validateSubmit, type ValidSubmit } from '../../src/protocol/jobs.js';

const ENTRY: PlanContext = { entrypoint: ['python', 'job.py'] };

function submit(body: Record<string, unknown>): ValidSubmit {
  const checked = validateSubmit({ project: 'demo', ...body });
  assert.ok(checked.ok, JSON.stringify(checked.ok ? null : checked.problems));
  return checked.value;
}

const plan = (body: Record<string, unknown>, ctx: PlanContext = ENTRY) => planJob(submit(body), ctx);

function problemsOf(body: Record<string, unknown>, ctx: PlanContext = ENTRY): Problem[] {
  try {
    plan(body, ctx);
  } catch (error) {
    assert.ok(isAppError(error));
    assert.equal(error.code, 'validation_failed');
    assert.equal(error.status, 422);
    return error.details.problems as Problem[];
  }
  return assert.fail('the job was planned');
}

function expectProblem(body: Record<string, unknown>, path: string, message: RegExp, ctx: PlanContext = ENTRY): void {
  const problems = problemsOf(body, ctx);
  const found = problems.find((problem) => problem.path === path);
  assert.ok(found, `no problem at "${path}": ${JSON.stringify(problems)}`);
  assert.match(found.message, message);
}

describe('one task', () => {
  it('without fan_out: one task with the job payload and the entrypoint', () => {
    const p = plan({ payload: { a: 1 } });
    assert.deepEqual(p.tasks, [{ index: 0, kind: 'task', payload: { a: 1 }, item: null, runner_command: ['python', 'job.py'] }]);
    assert.deepEqual(p.runnerCommand, ['python', 'job.py']);
    assert.equal(p.tasksTotal, 1);
    assert.equal(p.reduce, null);
    assert.equal(p.objective, null);
  });

  it('the job\'s runner_command wins over the entrypoint', () => {
    assert.deepEqual(plan({ runner_command: ['node', 'x.js'] }).tasks[0]!.runner_command, ['node', 'x.js']);
  });

  it('with no command anywhere: a problem at /runner_command', () => {
    expectProblem({}, '/runner_command', /neither the job nor the manifest's entrypoint.command/, { entrypoint: null });
    expectProblem({}, '/runner_command', /neither the job/, { entrypoint: [] });
  });
});

describe('fan_out.by', () => {
  it('SPEC example: each element replaces payload.k', () => {
    const p = plan({ payload: { xs: [10, 20, 30], scale: 2 }, fan_out: { by: 'xs' } });
    assert.deepEqual(p.tasks.map((t) => t.payload), [{ xs: 10, scale: 2 }, { xs: 20, scale: 2 }, { xs: 30, scale: 2 }]);
    assert.deepEqual(p.tasks.map((t) => t.item), [10, 20, 30]);
    assert.deepEqual(p.tasks.map((t) => t.index), [0, 1, 2]);
    assert.ok(p.tasks.every((t) => t.kind === 'task'));
  });

  it('with batch_size: slices of n, the last one shorter', () => {
    const p = plan({ payload: { xs: [1, 2, 3, 4, 5] }, fan_out: { by: 'xs' }, batch_size: 2 });
    assert.deepEqual(p.tasks.map((t) => t.payload.xs), [[1, 2], [3, 4], [5]]);
    assert.deepEqual(p.tasks.map((t) => t.item), [[1, 2], [3, 4], [5]]);
  });

  it('payload.k missing, not an array, or empty: a problem at /payload/k', () => {
    expectProblem({ fan_out: { by: 'xs' } }, '/payload/xs', /is required: fan_out.by names "xs"/);
    expectProblem({ payload: { xs: 'abc' }, fan_out: { by: 'xs' } }, '/payload/xs', /must be an array/);
    expectProblem({ payload: { xs: [] }, fan_out: { by: 'xs' } }, '/payload/xs', /must not be empty/);
    expectProblem({ payload: { 'a/b': 1 }, fan_out: { by: 'a/b' } }, '/payload/a~1b', /must be an array/);
  });
});

describe('fan_out.items', () => {
  it('SPEC example: payload plus "item"', () => {
    const p = plan({ payload: { model: 'm' }, fan_out: { items: ['a', { b: 1 }] } });
    assert.deepEqual(p.tasks.map((t) => t.payload), [{ model: 'm', item: 'a' }, { model: 'm', item: { b: 1 } }]);
    assert.deepEqual(p.tasks.map((t) => t.item), ['a', { b: 1 }]);
  });

  it('with batch_size: payload plus "items" (a slice)', () => {
    const p = plan({ fan_out: { items: [1, 2, 3] }, batch_size: 2 });
    assert.deepEqual(p.tasks.map((t) => t.payload), [{ items: [1, 2] }, { items: [3] }]);
    assert.deepEqual(p.tasks.map((t) => t.item), [[1, 2], [3]]);
  });

  it('empty items: a problem', () => expectProblem({ fan_out: { items: [] } }, '/fan_out/items', /must not be empty/));
  it('batch_size without fan_out: a problem', () => expectProblem({ batch_size: 2 }, '/batch_size', /only applies with fan_out/));
});

describe('the 100,000-task limit', () => {
  it('plans exactly 100,000 tasks, fast', () => {
    const items = Array.from({ length: MAX_TASKS_PER_JOB }, (_, i) => i);
    const spec = submit({ payload: { xs: items, other: { big: 'shared' } }, fan_out: { by: 'xs' } });
    const started = performance.now();
    const p = planJob(spec, ENTRY);
    const elapsed = performance.now() - started;
    assert.equal(p.tasks.length, 100_000);
    assert.equal(p.tasks[99_999]!.payload.xs, 99_999);
    assert.ok(elapsed < 1000, `took ${elapsed} ms`);
  });

  it('refuses 100,001 tasks at the path of the array, and accepts them batched', () => {
    const items = Array.from({ length: MAX_TASKS_PER_JOB + 1 }, (_, i) => i);
    expectProblem({ fan_out: { items } }, '/fan_out/items', /would make 100,001 tasks; a job may have at most 100,000/);
    expectProblem({ payload: { xs: items }, fan_out: { by: 'xs' } }, '/payload/xs', /100,001 tasks/);
    assert.equal(plan({ fan_out: { items }, batch_size: 2 }).tasks.length, 50_001);
  });

  it('counts the reduce task of a map_reduce', () => {
    const items = Array.from({ length: MAX_TASKS_PER_JOB }, (_, i) => i);
    expectProblem({ type: 'map_reduce', fan_out: { items } }, '/fan_out/items', /100,001 tasks/);
  });

  it('refuses a sweep grid over the limit without building it', () => {
    const values = Array.from({ length: 1000 }, (_, i) => i);
    expectProblem({ type: 'sweep', sweep: { parameters: { a: values, b: values, c: values, d: values, e: values, f: values } } },
      '/sweep/parameters', /more than 2\^53|would make/);
    expectProblem({ type: 'sweep', sweep: { parameters: { a: values, b: values.slice(0, 101) } } }, '/sweep/parameters', /101,000 tasks/);
  });

  it('refuses a benchmark over the limit', () => {
    const strategies = Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`s${i}`, {}]));
    expectProblem({ type: 'benchmark', strategies, repeats: 1000 }, '/strategies', /101,000 tasks/);
  });
});

describe('sweep', () => {
  it('one task per grid point, last parameter fastest, payload plus params', () => {
    const p = plan({ type: 'sweep', payload: { data: 'd' }, sweep: { parameters: { lr: [0.1, 0.01], depth: [2, 4, 8] }, objective: { key: 'loss', goal: 'minimize' } } });
    assert.deepEqual(p.tasks.map((t) => t.params), [
      { lr: 0.1, depth: 2 }, { lr: 0.1, depth: 4 }, { lr: 0.1, depth: 8 },
      { lr: 0.01, depth: 2 }, { lr: 0.01, depth: 4 }, { lr: 0.01, depth: 8 },
    ]);
    assert.deepEqual(p.tasks[4]!.payload, { data: 'd', params: { lr: 0.01, depth: 4 } });
    assert.deepEqual(p.tasks[4]!.item, { lr: 0.01, depth: 4 });
    assert.deepEqual(p.objective, { key: 'loss', goal: 'minimize' });
  });

  it('needs sweep; refuses fan_out and a top-level objective', () => {
    expectProblem({ type: 'sweep' }, '/sweep', /is required for type "sweep"/);
    expectProblem({ type: 'sweep', sweep: { parameters: { a: [1] } }, fan_out: { items: [1] } }, '/fan_out', /only used by type/);
    expectProblem({ type: 'sweep', sweep: { parameters: { a: [1] } }, objective: { key: 'x', goal: 'maximize' } }, '/objective', /sweep.objective/);
  });
});

describe('map_reduce', () => {
  it('map tasks from fan_out, and the reduce description', () => {
    const p = plan({ type: 'map_reduce', payload: { xs: [1, 2, 3], bucket: 'b' }, fan_out: { by: 'xs' }, reduce: { runner_command: ['python', 'reduce.py'], payload: { mode: 'sum' } } });
    assert.deepEqual(p.tasks.map((t) => [t.kind, t.payload]), [['map', { xs: 1, bucket: 'b' }], ['map', { xs: 2, bucket: 'b' }], ['map', { xs: 3, bucket: 'b' }]]);
    assert.deepEqual(p.reduce, { index: 3, runner_command: ['python', 'reduce.py'], payload: { bucket: 'b', mode: 'sum' } });
    assert.equal(p.tasksTotal, 4);
  });

  it('the reduce defaults to the job\'s command and payload', () => {
    const p = plan({ type: 'map_reduce', payload: { k: 1 }, fan_out: { items: ['a'] } });
    assert.deepEqual(p.reduce, { index: 1, runner_command: ['python', 'job.py'], payload: { k: 1 } });
  });

  it('reducePayload: results in task order, null for a map task that did not complete', () => {
    const payload = reducePayload({ payload: { mode: 'sum' } }, [
      { index: 2, result: { v: 3 }, status: 'completed' },
      { index: 0, result: { v: 1 }, status: 'completed' },
      { index: 1, result: { v: 'partial' }, status: 'failed' },
    ]);
    assert.deepEqual(payload, { mode: 'sum', results: [{ v: 1 }, null, { v: 3 }] });
  });

  it('needs fan_out; reduce belongs to map_reduce only', () => {
    expectProblem({ type: 'map_reduce' }, '/fan_out', /is required for type "map_reduce"/);
    expectProblem({ reduce: {} }, '/reduce', /only used by type "map_reduce"/);
  });
});

describe('benchmark', () => {
  const body = {
    type: 'benchmark', payload: { n: 100, impl: 'base' }, repeats: 2, objective: { key: 'ops', goal: 'maximize' },
    strategies: { fast: { payload: { impl: 'fast' } }, rust: { runner_command: ['./bench'] } },
  };

  it('one task per strategy and repeat, repeat-major, payloads merged', () => {
    const p = plan(body);
    assert.deepEqual(p.tasks.map((t) => [t.index, t.strategy, t.repeat]), [[0, 'fast', 0], [1, 'rust', 0], [2, 'fast', 1], [3, 'rust', 1]]);
    assert.deepEqual(p.tasks[2]!.payload, { n: 100, impl: 'fast', strategy: 'fast', repeat: 1 });
    assert.deepEqual(p.tasks[1]!.payload, { n: 100, impl: 'base', strategy: 'rust', repeat: 0 });
    assert.deepEqual(p.tasks[1]!.item, { strategy: 'rust', repeat: 0 });
    assert.deepEqual(p.tasks.map((t) => t.runner_command[0]), ['python', './bench', 'python', './bench']);
    assert.deepEqual(p.objective, { key: 'ops', goal: 'maximize' });
  });

  it('repeats defaults to 1', () => assert.equal(plan({ ...body, repeats: undefined }).tasks.length, 2));

  it('without any job command: fine when every strategy names one, else a problem naming the others', () => {
    const own = plan({ type: 'benchmark', strategies: { a: { runner_command: ['a'] } } }, { entrypoint: null });
    assert.equal(own.runnerCommand, null);
    assert.deepEqual(own.tasks[0]!.runner_command, ['a']);
    expectProblem(body, '/runner_command', /strategies "fast" name none either/, { entrypoint: null });
  });

  it('needs strategies; repeats and objective belong to benchmark', () => {
    expectProblem({ type: 'benchmark' }, '/strategies', /is required for type "benchmark"/);
    expectProblem({ repeats: 2 }, '/repeats', /only used by type "benchmark"/);
    expectProblem({ objective: { key: 'x', goal: 'maximize' } }, '/objective', /only used by type "benchmark"/);
  });
});

describe('other rules', () => {
  it('reserves COMPUTALOT_* env names', () => expectProblem({ env: { COMPUTALOT_TASK_ID: 'x' } }, '/env/COMPUTALOT_TASK_ID', /reserved/));
  it('gpu_count needs profile gpu', () => {
    expectProblem({ requirements: { gpu_count: 1 } }, '/requirements/gpu_count', /profile": "gpu"/);
    assert.equal(plan({ profile: 'gpu', requirements: { gpu_count: 1 } }).tasks.length, 1);
  });
  it('reports every problem at once, with a summary naming the first', () => {
    try {
      plan({ type: 'sweep', batch_size: 2, env: { COMPUTALOT_X: '1' } }, { entrypoint: null });
      assert.fail('planned');
    } catch (error) {
      assert.ok(isAppError(error));
      const paths = (error.details.problems as Problem[]).map((p) => p.path);
      assert.deepEqual(paths, ['/sweep', '/batch_size', '/env/COMPUTALOT_X', '/runner_command']);
      assert.match(error.message, /\/sweep is required for type "sweep" \(and 3 more problem\(s\)\)/);
    }
  });
});

describe('sizes a job may not pass', () => {
  const refused = (body: Record<string, unknown>) => {
    try {
      plan(body);
    } catch (err) {
      assert.ok(isAppError(err));
      return err;
    }
    return assert.fail('planned');
  };

  it('refuses task payload copies over MAX_JOB_PAYLOAD_BYTES in all, by fan-out, sweep and benchmark, before building', () => {
    const blob = 'x'.repeat(70 * 1024);
    const items = Array.from({ length: 1100 }, (_, i) => i);
    for (const body of [
      { payload: { blob }, fan_out: { items } },
      { type: 'sweep', payload: { blob }, sweep: { parameters: { a: items } } },
      { type: 'benchmark', strategies: { s: { payload: { blob } } }, repeats: 1000, payload: { n: 1 } },
    ]) {
      const err = refused(body);
      assert.equal(err.code, 'job_too_large', JSON.stringify(body).slice(0, 80));
      assert.equal(err.status, 413);
      assert.equal((err.details as { limit_bytes: number }).limit_bytes, MAX_JOB_PAYLOAD_BYTES);
    }
    // Under the limit, and the fanned-out array is not counted per task: it is split among them.
    assert.equal(plan({ payload: { blob }, fan_out: { items: items.slice(0, 900) } }).tasks.length, 900);
    assert.equal(plan({ payload: { xs: Array.from({ length: 50_000 }, () => blob.slice(0, 1000)) }, fan_out: { by: 'xs' } }).tasks.length, 50_000);
    assert.equal(plan({ payload: { blob: 'x'.repeat(9 * 1024 * 1024) } }).tasks.length, 1, 'one task: bounded by the body');
  });

  it('refuses env, commands, meta and variant over their limits, at their paths', () => {
    const problemsOf = (body: Record<string, unknown>) =>
      ((refused(body).details as { problems: Problem[] }).problems).map((p) => p.path);
    const value = 'v'.repeat(30_000);
    assert.deepEqual(problemsOf({ env: { A: value, B: value, C: value, D: value, E: value } }), ['/env']);
    assert.deepEqual(problemsOf({ runner_command: ['x', value, value, value, value, value] }), ['/runner_command']);
    assert.deepEqual(problemsOf({ type: 'benchmark', strategies: { 'a/b': { runner_command: ['x', value, value, value, value, value] } } }), ['/strategies/a~1b/runner_command']);
    assert.deepEqual(problemsOf({ meta: { m: 'm'.repeat(70_000) }, variant: 'v'.repeat(70_000) }), ['/meta', '/variant']);
    assert.equal(plan({ env: { A: value, B: value, C: value, D: value }, meta: { m: 'm'.repeat(60_000) } }).tasks.length, 1);
  });
});
