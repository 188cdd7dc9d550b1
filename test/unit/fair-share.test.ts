/** The fair order of a lease (core/fair-share.ts): slots shared between accounts, then projects, by what each holds. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fairOrder, type FairCandidate } from '../../src/core/fair-share.js';

let seq = 0;
/** `n` queued tasks of one (account, project), available at `at` (seconds), in their queue order. */
function queued(account: string, project: string, n: number, at = 0, priority = 0): FairCandidate[] {
  return Array.from({ length: n }, () => {
    seq += 1;
    return { id: `t${String(seq).padStart(4, '0')}`, job_id: `${account}-${project}-job`, account_id: account, project_id: project, priority, available_at: new Date(at * 1000).toISOString() };
  });
}
const who = (tasks: FairCandidate[]) => tasks.map((t) => `${t.account_id}/${t.project_id}`);

describe('fair order of a lease', () => {
  it('alternates between accounts that hold nothing, the account with the older task first', () => {
    const order = fairOrder([...queued('b', 'p', 3, 5), ...queued('a', 'p', 10, 1)], [], 5);
    assert.deepEqual(who(order), ['a/p', 'b/p', 'a/p', 'b/p', 'a/p']);
  });

  it('gives the free slots to the account holding fewer, whoever queued first', () => {
    const order = fairOrder([...queued('a', 'p', 10, 1), ...queued('b', 'p', 3, 9)], [{ account_id: 'a', project_id: 'p', n: 4 }], 4);
    assert.deepEqual(who(order), ['b/p', 'b/p', 'b/p', 'a/p'], 'b holds 0 against a\'s 4: its three go first, then a (b has no more)');
  });

  it('shares an account\'s slots between its projects by what each project holds', () => {
    const order = fairOrder([...queued('a', 'x', 5, 1), ...queued('a', 'y', 5, 2)], [{ account_id: 'a', project_id: 'x', n: 2 }], 4);
    assert.deepEqual(who(order), ['a/y', 'a/y', 'a/x', 'a/y'], 'y catches up with x\'s two, then they alternate (x\'s task is older on a tie)');
  });

  it('orders an account\'s own work by priority first, across its projects', () => {
    const order = fairOrder([...queued('a', 'x', 3, 1, 0), ...queued('a', 'y', 2, 2, 7)], [], 4);
    assert.deepEqual(order.map((t) => t.priority), [7, 7, 0, 0]);
  });

  it('does not let one account\'s priority pass another account holding less', () => {
    const order = fairOrder([...queued('a', 'p', 2, 1, 9), ...queued('b', 'p', 2, 2, 0)], [{ account_id: 'a', project_id: 'p', n: 1 }], 2);
    assert.deepEqual(who(order), ['b/p', 'a/p'], 'b holds 0, a holds 1: b first, then a tie on 1 each goes to a\'s older task');
  });

  it('counts what an account holds in projects with nothing queued', () => {
    const order = fairOrder([...queued('a', 'x', 3, 1), ...queued('b', 'p', 3, 2)], [{ account_id: 'a', project_id: 'other', n: 2 }], 3);
    assert.deepEqual(who(order), ['b/p', 'b/p', 'a/x']);
  });

  it('keeps an account with a running_tasks cap to its room, and passes over it when full', () => {
    const candidates = [...queued('a', 'p', 5, 1), ...queued('b', 'p', 5, 2)];
    assert.deepEqual(who(fairOrder(candidates, [], 5, new Map([['a', 1]]))), ['a/p', 'b/p', 'b/p', 'b/p', 'b/p']);
    assert.deepEqual(who(fairOrder(candidates, [], 3, new Map([['a', 0]]))), ['b/p', 'b/p', 'b/p']);
  });

  it('takes no more than it is asked for, nor more than there is', () => {
    const candidates = [...queued('a', 'p', 2, 1), ...queued('b', 'p', 1, 2)];
    assert.equal(fairOrder(candidates, [], 2).length, 2);
    assert.equal(fairOrder(candidates, [], 10).length, 3);
    assert.deepEqual(fairOrder([], [{ account_id: 'a', project_id: 'p', n: 3 }], 4), []);
  });

  it('keeps each project\'s own queue order', () => {
    const a = queued('a', 'p', 4, 1);
    const order = fairOrder([...queued('b', 'p', 4, 2), ...a], [], 8);
    assert.deepEqual(order.filter((t) => t.account_id === 'a').map((t) => t.id), a.map((t) => t.id));
  });
});
