/**
 * Finds what is wrong with a manifest, each problem located by an RFC 6901 JSON path (SPEC §2, §4).
 *
 * Invariants:
 * - Schema problems come from TypeBox's `Value.Errors` on the one schema in protocol/manifest.ts; at most
 *   one problem per path is kept (TypeBox reports a missing property twice: "required" and "wrong type").
 * - Messages are plain English fragments that read after the path: "/runtime/kind must be \"oci\"".
 * - Checks across fields (unique names, artifact xor url, runc allowed, `..` in paths) only look at values
 *   of the right type, so a wrong type is reported once, by the schema.
 * - Unknown keys are never problems, only warnings, found by walking the same schema.
 * - Pure: no I/O.
 */
import type { TSchema } from '@sinclair/typebox';
import { Value, ValueErrorType, type ValueError } from '@sinclair/typebox/value';
import { ManifestSchema } from '../protocol/manifest.js';
import type { Problem } from './errors.js';

export type Json = Record<string, unknown>;

export const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

export function pointer(...parts: Array<string | number>): string {
  return parts.map((part) => `/${String(part).replaceAll('~', '~0').replaceAll('/', '~1')}`).join('');
}

/** The offset where JSON.parse gives up, found by bisection when V8's message names no position. */
function syntaxErrorOffset(text: string, message: string): number {
  const stated = /at position (\d+)/.exec(message);
  if (stated) return Number(stated[1]);
  if (/end of JSON input/.test(message)) return text.length;
  // A prefix is "viable" when parsing it fails only because it ends too early.
  const viable = (length: number): boolean => {
    try {
      JSON.parse(text.slice(0, length));
      return true;
    } catch (error) {
      const msg = (error as Error).message;
      const at = /at position (\d+)/.exec(msg);
      return /end of JSON input|Unterminated/.test(msg) || (at !== null && Number(at[1]) >= length);
    }
  };
  let low = 0;
  let high = text.length;
  while (low < high) {
    const mid = Math.ceil((low + high) / 2);
    if (viable(mid)) low = mid;
    else high = mid - 1;
  }
  return low;
}

export function jsonSyntaxProblem(text: string, error: Error): Problem {
  const offset = syntaxErrorOffset(text, error.message);
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const column = offset - before.lastIndexOf('\n');
  return {
    path: '',
    message: `is not valid JSON: it breaks at line ${line}, column ${column} (${error.message})`,
  };
}

function describe(error: ValueError): string {
  const schema = error.schema as TSchema & Record<string, unknown>;
  const about = typeof schema.description === 'string' ? schema.description : null;
  switch (error.type) {
    case ValueErrorType.ObjectRequiredProperty:
      return 'is required';
    case ValueErrorType.Literal:
      return `must be ${JSON.stringify(schema.const)}`;
    case ValueErrorType.Union: {
      const options = (schema.anyOf as Array<{ const?: unknown }> | undefined) ?? [];
      return `must be one of ${options.map((option) => JSON.stringify(option.const)).join(', ')}`;
    }
    case ValueErrorType.ObjectAdditionalProperties:
      return about ? `is not an allowed key (${about})` : 'is not an allowed key';
    case ValueErrorType.StringPattern:
    case ValueErrorType.StringMinLength:
      if (about) return `must be ${about}`;
      return error.type === ValueErrorType.StringMinLength ? 'must not be empty' : error.message;
    case ValueErrorType.ArrayMinItems:
      return about ? `must be ${about}` : 'must not be empty';
    case ValueErrorType.Object:
      return 'must be an object';
    case ValueErrorType.Array:
      return about ? `must be ${about}` : 'must be an array';
    case ValueErrorType.String:
      return 'must be a string';
    case ValueErrorType.Integer:
      return 'must be an integer';
    case ValueErrorType.Number:
      return 'must be a number';
    default:
      return error.message.replace(/^Expected/, 'must be');
  }
}

export function schemaProblems(value: unknown): Problem[] {
  const seen = new Set<string>();
  const problems: Problem[] = [];
  for (const error of Value.Errors(ManifestSchema, value)) {
    if (seen.has(error.path)) continue;
    seen.add(error.path);
    problems.push({ path: error.path, message: describe(error) });
  }
  return problems;
}

/** One warning sentence per key that the schema does not know, at any depth of known objects. */
export function unknownKeyWarnings(value: unknown, schema: TSchema = ManifestSchema, path = ''): string[] {
  const warnings: string[] = [];
  if (schema.type === 'object' && isObject(value) && isObject(schema.properties)) {
    const properties = schema.properties as Record<string, TSchema>;
    for (const [key, child] of Object.entries(value)) {
      const known = properties[key];
      if (known) warnings.push(...unknownKeyWarnings(child, known, path + pointer(key)));
      else warnings.push(`Unknown key at ${path + pointer(key)} is not used by this server and was ignored.`);
    }
  } else if (schema.type === 'array' && Array.isArray(value) && schema.items) {
    value.forEach((item, index) => {
      warnings.push(...unknownKeyWarnings(item, schema.items as TSchema, path + pointer(index)));
    });
  }
  return warnings;
}
