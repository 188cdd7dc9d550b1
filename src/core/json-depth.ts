/**
 * How deeply a JSON request body may nest (SPEC §2: bad input never yields a 5xx).
 *
 * Why: JSON.parse takes any depth, but everything after it recurses: JSON.stringify of a job's spec or a
 * KV value, the canonical form behind idempotency keys, deep equality. At ~5,000 levels those throw
 * RangeError (stack overflow) and the request ended in a 500 (a whole batch with it). Bodies are refused
 * at the door instead, with the path of the first value too deep, at a depth no real payload reaches.
 */
import { pointer } from './manifest-problems.js';

export const MAX_JSON_DEPTH = 128;

/**
 * The JSON pointer of the first value nested deeper than `max` levels (the top-level value is level 1),
 * or null. Walks without recursion and builds a path only when one is too deep.
 */
export function tooDeepAt(value: unknown, max = MAX_JSON_DEPTH): string | null {
  if (value === null || typeof value !== 'object') return null;
  const stack: Array<[object, number]> = [[value as object, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    const children = Array.isArray(node) ? node : Object.values(node);
    for (const child of children) {
      if (child === null || typeof child !== 'object') continue;
      if (depth + 1 > max) return pathTo(value as object, max);
      stack.push([child as object, depth + 1]);
    }
  }
  return null;
}

/** The path of the first (depth-first) value at level `max + 1`; only called when one exists. */
function pathTo(node: object, max: number, depth = 1, path = ''): string | null {
  for (const [key, child] of Array.isArray(node) ? node.entries() : Object.entries(node)) {
    if (child === null || typeof child !== 'object') continue;
    const here = path + pointer(key);
    if (depth + 1 > max) return here;
    const found = pathTo(child as object, max, depth + 1, here);
    if (found !== null) return found;
  }
  return null;
}
