/**
 * Schema validators: request bodies are validated strictly (no type coercion, so `{"env": {"A": 1}}` is
 * a 422, not silently "1"); querystrings, params and headers coerce, because on the wire they are text.
 */
import { Ajv, type Options } from 'ajv';
import type { FastifyInstance } from 'fastify';

const common: Options = { removeAdditional: false, allErrors: true, useDefaults: true, strict: false };

export function installValidators(app: FastifyInstance): void {
  const bodies = new Ajv({ ...common, coerceTypes: false });
  const text = new Ajv({ ...common, coerceTypes: 'array' });
  app.setValidatorCompiler(({ schema, httpPart }) =>
    (httpPart === 'body' ? bodies : text).compile(schema) as ReturnType<Ajv['compile']>);
}
