/** Project reads of concurrent submits (src/services/project-lookups.ts): one read per account per turn, never a cached answer. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Project } from '../../src/core/model.js';
import { projectKey, projectLoader } from '../../src/services/project-lookups.js';

const project = (account_id: string, name: string): Project => ({
  id: `prj_${account_id}_${name}`, account_id, name, remote_dir: null, description: null, env: {}, created_at: '', updated_at: '',
  active_revision_id: null, invalidated_at: null,
});

describe('project lookups', () => {
  it('reads the projects asked for in one turn with one query per account, and answers null for a missing one', async () => {
    const calls: Array<[string, string[]]> = [];
    const loader = projectLoader({
      async getProjects(account, names) {
        calls.push([account, [...names].sort()]);
        return names.filter((n) => n !== 'gone').map((n) => project(account, n));
      },
    });
    const got = await Promise.all([
      loader.load(projectKey('acc_a', 'p1')), loader.load(projectKey('acc_a', 'p2')),
      loader.load(projectKey('acc_b', 'p1')), loader.load(projectKey('acc_a', 'gone')),
    ]);
    assert.deepEqual(got.map((p) => p?.id ?? null), ['prj_acc_a_p1', 'prj_acc_a_p2', 'prj_acc_b_p1', null]);
    assert.deepEqual(calls.sort(), [['acc_a', ['gone', 'p1', 'p2']], ['acc_b', ['p1']]]);
  });

  it('never answers from an earlier read: a later load reads again (a push in between is seen)', async () => {
    let active = 'rev_1';
    let reads = 0;
    const loader = projectLoader({
      async getProjects(account, names) {
        reads += 1;
        return names.map((n) => ({ ...project(account, n), active_revision_id: active }));
      },
    });
    assert.equal((await loader.load(projectKey('acc', 'p')))?.active_revision_id, 'rev_1');
    active = 'rev_2';
    assert.equal((await loader.load(projectKey('acc', 'p')))?.active_revision_id, 'rev_2');
    assert.equal(reads, 2);
  });
});
