/**
 * Identifiers: a type prefix plus a ULID, so ids sort by creation time and say what they name.
 * Secrets (API keys, worker tokens) are random and never derived from ids.
 */
import { randomBytes } from 'node:crypto';
import { monotonicFactory } from 'ulid';

const ulid = monotonicFactory();

export type IdPrefix = 'acc' | 'prj' | 'rev' | 'key' | 'wtk' | 'wkr' | 'rt' | 'job' | 'tsk' | 'art' | 'att';

export function newId(prefix: IdPrefix): string {
  return `${prefix}_${ulid()}`;
}

/** A bearer secret: prefix + 40 chars of base62-ish entropy (240 bits). */
export function newSecret(prefix: 'flk' | 'wkr'): string {
  return `${prefix}_${randomBytes(30).toString('base64url')}`;
}
