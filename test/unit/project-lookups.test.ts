/**
 * Project reads of submits (src/services/project-lookups.ts): on PostgreSQL one read per account per turn;
 * on both stores a found project is kept and says so (its jobs are then checked at insert), a missing one
 * is read again.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Project } from '../../src/core/model.js';
import { projectKey, ProjectLookups } from '../../src/services/project-lookups.js';

const project = (account_id: string, name: string): Project => ({
  id: `prj_${account_id}_${name}`, account_id, name, remote_dir: null, description: null, env: {}, created_at: '', updated_at: '',
  active_revision_id: null, invalidated_at: null,
});

describe('project lookups', () => {
  it('reads the projects asked for in one turn with one query per account, and answers null for a missing one', async () => {
    const calls: Array<[string, string[]]> = [];
    const lookups = new ProjectLookups({
      async getProjects(account: string, names: string[]) {
        calls.push([account, [...names].sort()]);
        return names.filter((n) => n !== 'gone').map((n) => project(account, n));
      },
    });
    const got = await Promise.all([
      lookups.load(projectKey('acc_a', 'p1')), lookups.load(projectKey('acc_a', 'p2')),
      lookups.load(projectKey('acc_b', 'p1')), lookups.load(projectKey('acc_a', 'gone')),
    ]);
    assert.deepEqual(got.map((g) => g.project?.id ?? null), ['prj_acc_a_p1', 'prj_acc_a_p2', 'prj_acc_b_p1', null]);
    assert.deepEqual(got.map((g) => g.kept), [false, false, false, false]);
    assert.deepEqual(calls.sort(), [['acc_a', ['gone', 'p1', 'p2']], ['acc_b', ['p1']]]);
  });

  it('keeps a found project and says so; a fresh load, or one after forget, reads again; a missing one is never kept', async () => {
    let active = 'rev_1';
    const reads: string[][] = [];
    const lookups = new ProjectLookups({
      async getProjects(account: string, names: string[]) {
        reads.push(names);
        return names.filter((n) => n !== 'gone').map((n) => ({ ...project(account, n), active_revision_id: active }));
      },
    });
    const key = projectKey('acc', 'p');
    assert.deepEqual(await lookups.load(key).then((g) => [g.project?.active_revision_id, g.kept]), ['rev_1', false]);
    active = 'rev_2';
    assert.deepEqual(await lookups.load(key).then((g) => [g.project?.active_revision_id, g.kept]), ['rev_1', true], 'kept: the insert checks it');
    assert.deepEqual(await lookups.load(key, true).then((g) => [g.project?.active_revision_id, g.kept]), ['rev_2', false]);
    active = 'rev_3';
    lookups.forget(key);
    assert.deepEqual(await lookups.load(key).then((g) => [g.project?.active_revision_id, g.kept]), ['rev_3', false]);
    assert.equal((await lookups.load(projectKey('acc', 'gone'))).project, null);
    assert.equal((await lookups.load(projectKey('acc', 'gone'))).project, null);
    assert.deepEqual(reads, [['p'], ['p'], ['p'], ['gone'], ['gone']]);
  });
  it('SQLite (loadNow): reads at once, keeps a found project, reads again when fresh or after forget, never keeps a missing one', async () => {
    const reads: string[] = [];
    const lookups = new ProjectLookups({ getProjects: async () => { throw new Error('loadNow must not batch'); } });
    const read = (name: string) => async () => {
      reads.push(name);
      return name === 'gone' ? null : project('acc_a', name);
    };
    const key = projectKey('acc_a', 'p1');
    assert.deepEqual(await lookups.loadNow(key, false, read('p1')), { project: project('acc_a', 'p1'), kept: false });
    assert.deepEqual(await lookups.loadNow(key, false, read('p1')), { project: project('acc_a', 'p1'), kept: true });
    assert.equal((await lookups.loadNow(key, true, read('p1'))).kept, false);
    lookups.forget(key);
    assert.equal((await lookups.loadNow(key, false, read('p1'))).kept, false);
    const gone = projectKey('acc_a', 'gone');
    assert.deepEqual(await lookups.loadNow(gone, false, read('gone')), { project: null, kept: false });
    assert.deepEqual(await lookups.loadNow(gone, false, read('gone')), { project: null, kept: false });
    assert.deepEqual(reads, ['p1', 'p1', 'p1', 'gone', 'gone']);
  });
});
