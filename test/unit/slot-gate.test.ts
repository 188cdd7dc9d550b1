/** The worker's slots (src/worker/slot-gate.ts): never more holders than slots, first come first served, and a waiter that gives up never takes one. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SlotGate } from '../../src/worker/slot-gate.js';

const never = new Promise<never>(() => {});

describe('slot gate', () => {
  it('grants up to its size at once, then serves waiters in order as slots are released', async () => {
    const gate = new SlotGate(2);
    assert.equal(await gate.take(never), true);
    assert.equal(await gate.take(never), true);
    const order: string[] = [];
    const a = gate.take(never).then((ok) => order.push(`a:${ok}`));
    const b = gate.take(never).then((ok) => order.push(`b:${ok}`));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(order, [], 'both wait while two hold the slots');
    assert.equal(gate.taken, 2);
    gate.release();
    await a;
    assert.deepEqual(order, ['a:true']);
    gate.release();
    await b;
    assert.deepEqual(order, ['a:true', 'b:true']);
    assert.equal(gate.taken, 2);
  });

  it('a waiter whose task is cancelled leaves the line without a slot; the next one gets it', async () => {
    const gate = new SlotGate(1);
    await gate.take(never);
    let cancel!: () => void;
    const cancelled = new Promise<void>((resolve) => { cancel = resolve; });
    const first = gate.take(cancelled);
    const second = gate.take(never);
    cancel();
    assert.equal(await first, false);
    gate.release();
    assert.equal(await second, true);
    assert.equal(gate.taken, 1, 'the cancelled waiter took nothing');
  });

  it('a newcomer does not pass waiters even when a slot is free at that moment', async () => {
    const gate = new SlotGate(1);
    await gate.take(never);
    const waiting = gate.take(never);
    gate.release(); // hands the slot straight to the waiter
    assert.equal(await waiting, true);
    let late = false;
    void gate.take(never).then(() => { late = true; });
    await new Promise((r) => setImmediate(r));
    assert.equal(late, false);
  });
});
