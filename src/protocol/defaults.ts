/**
 * Schema defaults applied by a function built once from the schema, for the submit path.
 *
 * Why not `Value.Default` per call: it walks the whole schema and the whole value (payloads included)
 * on every call; for a batch of 1,000 submits that was 4.2 ms of the request's ~45 ms (measured with
 * 10,000 bodies: Check 0.33 ms, Clone 0.25 ms, Clone + Default 4.2 ms per 1,000). The function built here
 * visits only the properties that have a default or contain one: 0.6 ms per 1,000, same bodies.
 *
 * It covers what our schemas use: `default` on a property of an object (any property schema: literal
 * unions, integers, records) and objects nested in objects. A default anywhere else (inside an array,
 * a record's values, a union of objects) is refused when the function is built, so a schema change that
 * needs more fails at start-up instead of silently losing a default; test/unit/schema-defaults.test.ts
 * compares the result with `Value.Default` on the submit schema.
 *
 * The value is never changed in place: the answer is a copy (objects with defaults inside are copied
 * too), so the request body stays as the client sent it, for its idempotency hash.
 */
import { type TSchema } from '@sinclair/typebox';

type Filler = (value: Record<string, unknown>) => Record<string, unknown>;

const isObjectSchema = (schema: TSchema) => schema.type === 'object' && typeof schema.properties === 'object';
const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

function containsDefault(schema: unknown): boolean {
  if (!schema || typeof schema !== 'object') return false;
  if ('default' in schema) return true;
  return Object.values(schema).some(containsDefault);
}

export function defaultsFiller(schema: TSchema): Filler {
  if (!isObjectSchema(schema)) throw new Error('defaultsFiller: an object schema is needed');
  // Scalar defaults go under the value in one step: a loop of keyed writes into a copy cost more than
  // Value.Default itself (5.6 against 4.2 µs per submit, measured). Object defaults are cloned per call,
  // so no two submits share one.
  const scalars: Record<string, unknown> = {};
  const objects: Array<[string, unknown]> = [];
  const nested: Array<[string, Filler]> = [];
  for (const [key, property] of Object.entries(schema.properties as Record<string, TSchema>)) {
    const inner = isObjectSchema(property) && Object.values(property.properties as object).some(containsDefault);
    if (!inner) {
      const { default: _own, ...rest } = property;
      if (containsDefault(rest)) throw new Error(`defaultsFiller: a default below "${key}" is not in an object's property`);
    }
    if ('default' in property) {
      if (property.default !== null && typeof property.default === 'object') objects.push([key, property.default]);
      else scalars[key] = property.default;
    }
    if (inner) nested.push([key, defaultsFiller(property)]);
  }
  // JSON input: a missing key is the only way a property is undefined, so the value's own keys win.
  return (value) => {
    // Object.assign, not a spread: spreading the non-literal `scalars` took 1.2 µs, assign 0.06.
    const out: Record<string, unknown> = Object.assign({}, scalars, value);
    for (const [key, initial] of objects) if (value[key] === undefined) out[key] = structuredClone(initial);
    for (const [key, fill] of nested) {
      const current = out[key];
      if (isPlainObject(current)) out[key] = fill(current);
    }
    return out;
  };
}
