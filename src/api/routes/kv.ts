/**
 * Project-scoped KV (SPEC §9). Keys come percent-encoded in the path (a raw `/` also works: the route
 * takes the rest of the path). Values are any JSON, whatever the Content-Type, up to the value limit.
 * Versions are exposed as ETags; If-Match and If-None-Match: * make writes conditional.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { addSeconds, nowIso } from '../../core/clock.js';
import { AppError, formatBytes } from '../../core/errors.js';
import { tooDeepAt } from '../../core/json-depth.js';
import { kvKeyProblem } from '../../core/names.js';
import { authErrors, ErrorBody, Nullable } from '../../protocol/common.js';
import type { Deps } from '../../services/deps.js';
import { sendError, toAppError, tooDeep } from '../error-handler.js';
import { loadProject, pageQuery } from '../load.js';

const KeyParams = Type.Object({ name: Type.String(), '*': Type.String() });
const PutQuery = Type.Object({ ttl_s: Type.Optional(Type.Integer({ minimum: 1, maximum: 10 * 365 * 86400 })) });
const ListQuery = Type.Object({
  prefix: Type.Optional(Type.String()),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })),
  cursor: Type.Optional(Type.String()),
});
const KvWriteResult = Type.Object({ key: Type.String(), version: Type.Integer(), updated_at: Type.String() });

function keyOf(raw: string): string {
  const problem = kvKeyProblem(raw);
  if (problem) throw new AppError('invalid_kv_key', { reason: problem });
  return raw;
}

function parseIfMatch(header: string | undefined): number | null {
  if (header === undefined) return null;
  const match = /^\s*(?:W\/)?"?(\d+)"?\s*$/.exec(header);
  if (!match) throw new AppError('invalid_request', { reason: `If-Match must be a version from an ETag, like "3"; got ${header}.` });
  return Number(match[1]);
}

export function kvRoutes(deps: Deps): FastifyPluginAsyncTypebox {
  const { store, config } = deps;
  const limit = config.kvMaxValueBytes;
  return async (app) => {
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', { parseAs: 'string', bodyLimit: limit }, (_request, body, done) => {
      let value: unknown;
      try {
        value = JSON.parse(body as string);
      } catch (err) {
        return done(new AppError('invalid_json', { reason: (err as Error).message }), undefined);
      }
      const deep = tooDeepAt(value);
      return deep === null ? done(null, value) : done(tooDeep(deep), undefined);
    });
    app.setErrorHandler((err, request, reply) => {
      const error = (err as { code?: string }).code === 'FST_ERR_CTP_BODY_TOO_LARGE'
        ? new AppError('kv_value_too_large', { limit: formatBytes(limit) })
        : toAppError(err as Parameters<typeof toAppError>[0], limit);
      if (error.status >= 500) request.log.error({ err }, 'request failed');
      return sendError(reply, error);
    });

    app.put('/projects/:name/kv/*', {
      schema: { tags: ['kv'], params: KeyParams, querystring: PutQuery, response: { 200: KvWriteResult, ...authErrors, 400: ErrorBody, 412: ErrorBody, 413: ErrorBody, 429: ErrorBody } },
    }, async (request) => {
      const project = await loadProject(store, request, request.params.name);
      const key = keyOf(request.params['*']);
      if (request.body === undefined) throw new AppError('invalid_json', { reason: 'the body is empty' });
      const ifNoneMatch = request.headers['if-none-match'];
      if (ifNoneMatch !== undefined && ifNoneMatch.trim() !== '*') {
        throw new AppError('invalid_request', { reason: 'If-None-Match only takes "*" (create only).' });
      }
      const ttl = request.query.ttl_s;
      const entry = await store.kvPut({
        project, key, value: JSON.stringify(request.body), ifMatch: parseIfMatch(request.headers['if-match']),
        ifNoneMatch: ifNoneMatch !== undefined, expiresAt: ttl ? addSeconds(nowIso(), ttl) : null, maxKeys: config.kvMaxKeys,
      });
      return { key: entry.key, version: entry.version, updated_at: entry.updated_at };
    });

    app.get('/projects/:name/kv/*', {
      schema: { tags: ['kv'], params: KeyParams },
    }, async (request, reply) => {
      const project = await loadProject(store, request, request.params.name);
      const key = keyOf(request.params['*']);
      const entry = await store.kvGet(project.id, key);
      if (!entry) throw new AppError('kv_key_not_found', { key, project: project.name });
      return reply.header('ETag', `"${entry.version}"`).type('application/json').send(entry.value);
    });

    app.delete('/projects/:name/kv/*', {
      schema: { tags: ['kv'], params: KeyParams, response: { 204: Type.Null(), ...authErrors } },
    }, async (request, reply) => {
      const project = await loadProject(store, request, request.params.name);
      const key = keyOf(request.params['*']);
      if (!(await store.kvDelete(project, key))) throw new AppError('kv_key_not_found', { key, project: project.name });
      return reply.code(204).send(null);
    });

    app.get('/projects/:name/kv', {
      schema: {
        tags: ['kv'], params: Type.Object({ name: Type.String() }), querystring: ListQuery,
        response: { 200: Type.Object({ keys: Type.Array(Type.Object({ key: Type.String(), version: Type.Integer(), updated_at: Type.String(), expires_at: Nullable(Type.String()) })), next_cursor: Nullable(Type.String()) }), ...authErrors },
      },
    }, async (request) => {
      const project = await loadProject(store, request, request.params.name);
      const page = await store.kvList(project.id, request.query.prefix ?? '', pageQuery(request.query));
      return {
        keys: page.items.map((e) => ({ key: e.key, version: e.version, updated_at: e.updated_at, expires_at: e.expires_at })),
        next_cursor: page.next_cursor,
      };
    });
  };
}
