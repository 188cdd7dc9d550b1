/**
 * Identifiers: a type prefix plus a ULID, so ids sort by creation time and say what they name.
 * Secrets (API keys, worker tokens) are random and never derived from ids.
 */
import { randomBytes, randomFillSync } from 'node:crypto';
import { monotonicFactory } from 'ulid';

/**
 * ulid asks its PRNG for one byte per character, and its default makes each a crypto call (3.3 % of the
 * server's time in single submits on SQLite, CPU profile); this one serves bytes from a 4 KiB buffer of
 * crypto randomness. Ids are not secrets (see newSecret), only unique and unguessable enough to not collide.
 */
const pool = new Uint8Array(4096);
let used = pool.length;
function pooledRandom(): number {
  if (used === pool.length) {
    randomFillSync(pool);
    used = 0;
  }
  return pool[used++]! / 256;
}

const ulid = monotonicFactory(pooledRandom);

export type IdPrefix = 'acc' | 'prj' | 'rev' | 'key' | 'wtk' | 'wkr' | 'rt' | 'job' | 'tsk' | 'art' | 'att';

export function newId(prefix: IdPrefix): string {
  return `${prefix}_${ulid()}`;
}

/** A bearer secret: prefix + 40 chars of base62-ish entropy (240 bits). */
export function newSecret(prefix: 'flk' | 'wkr'): string {
  return `${prefix}_${randomBytes(30).toString('base64url')}`;
}
