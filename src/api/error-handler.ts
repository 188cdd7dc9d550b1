/**
 * Turns every failure into the one error shape `{error: {code, message, details}}` (SPEC §2). Bad input
 * never becomes a 5xx: Fastify's own parse, size and validation errors are mapped onto registry codes;
 * anything else is a bug, logged with its stack and answered 500 internal_error.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, formatBytes, type Problem } from '../core/errors.js';
import { MAX_JSON_DEPTH } from '../core/json-depth.js';

interface AjvIssue { instancePath: string; message?: string; keyword: string; params: Record<string, unknown> }

/** Whether an issue only restates another at the same path (a union's summary or its `null` branch). */
const isEcho = (i: AjvIssue) => i.keyword === 'anyOf' || i.keyword === 'oneOf' || (i.keyword === 'type' && i.params.type === 'null');

export function problemsOf(issues: AjvIssue[]): Problem[] {
  const all = issues.map((issue) => {
    let path = issue.instancePath;
    if (issue.keyword === 'required') path += `/${String(issue.params.missingProperty)}`;
    if (issue.keyword === 'additionalProperties') {
      return { path: `${path}/${String(issue.params.additionalProperty)}`, message: 'is not a known field', echo: false };
    }
    return { path, message: issue.message ?? issue.keyword, echo: isEcho(issue) };
  });
  // One problem per path, preferring the specific one ("must match pattern") over union noise.
  const byPath = new Map<string, { path: string; message: string; echo: boolean }>();
  for (const p of all) {
    const seen = byPath.get(p.path);
    if (!seen || (seen.echo && !p.echo)) byPath.set(p.path, p);
  }
  // A union of constants (a state name) fails once per constant: name them all, not the first.
  const allowed = new Map<string, unknown[]>();
  for (const issue of issues) {
    if (issue.keyword === 'const') allowed.set(issue.instancePath, [...(allowed.get(issue.instancePath) ?? []), issue.params.allowedValue]);
  }
  return [...byPath.values()].map(({ path, message }) => {
    const values = allowed.get(path);
    return { path, message: values ? `must be one of ${values.map((v) => JSON.stringify(v)).join(', ')}` : message };
  });
}

function summary(problems: Problem[]): string {
  const first = problems[0];
  const head = first ? `${first.path || '(body)'} ${first.message}` : 'invalid input';
  return problems.length > 1 ? `${head} (and ${problems.length - 1} more)` : head;
}

export function toAppError(err: FastifyError & { validation?: AjvIssue[]; validationContext?: string }, bodyLimit: number): AppError {
  if (err instanceof AppError) return err;
  if (err.validation) {
    const problems = problemsOf(err.validation);
    if (err.validationContext === 'body') {
      return new AppError('validation_failed', { summary: summary(problems) }, { problems });
    }
    return new AppError('invalid_request', { reason: `Invalid ${err.validationContext ?? 'request'}: ${summary(problems)}.` }, { problems });
  }
  switch (err.code) {
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new AppError('invalid_json', { reason: 'the body is empty' });
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new AppError('invalid_json', { reason: err.message });
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new AppError('body_too_large', { limit: formatBytes(bodyLimit) });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new AppError('unsupported_media_type', { reason: 'This route takes JSON; send Content-Type: application/json.' });
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new AppError('invalid_request', { reason: 'The Content-Length header does not match the body.' });
    default:
      break;
  }
  if (err instanceof SyntaxError || (err.statusCode === 400 && /JSON/i.test(err.message))) {
    return new AppError('invalid_json', { reason: err.message });
  }
  if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
    return new AppError('invalid_request', { reason: err.message });
  }
  return new AppError('internal_error', { reason: err.code ?? err.name });
}

export function sendError(reply: FastifyReply, error: AppError): FastifyReply {
  for (const [name, value] of Object.entries(error.headers)) reply.header(name, value);
  return reply.code(error.status).type('application/json').send(error.toBody());
}

export function installErrorHandling(app: FastifyInstance, bodyLimit: number): void {
  app.setErrorHandler((err: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const error = toAppError(err, bodyLimit);
    if (error.status >= 500) request.log.error({ err }, 'request failed');
    return sendError(reply, error);
  });
  app.setNotFoundHandler((request, reply) =>
    sendError(reply, new AppError('route_not_found', { method: request.method, url: request.url.split('?')[0] ?? '' })));
}

/** The 422 for a body nested deeper than MAX_JSON_DEPTH (KV values get the same). */
export function tooDeep(path: string): AppError {
  const problems = [{ path, message: `is nested more than ${MAX_JSON_DEPTH} levels deep; flatten the structure or send it as a JSON string` }];
  return new AppError('validation_failed', { summary: summary(problems) }, { problems });
}
