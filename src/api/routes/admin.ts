/**
 * /api/v1/admin (SPEC §11), admin keys only: accounts and their quotas, API keys (shown once, stored
 * hashed), revocation, worker tokens, and the list of workers.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { AppError } from '../../core/errors.js';
import { newSecret } from '../../core/ids.js';
import { Nullable, PageQuery } from '../../protocol/common.js';
import type { Deps } from '../../services/deps.js';
import { hashSecret } from '../auth.js';
import { pageQuery } from '../load.js';

const QuotaValue = Type.Optional(Nullable(Type.Integer({ minimum: 0 })));
const QuotasBody = Type.Object({
  projects: QuotaValue, stored_bytes: QuotaValue, running_tasks: QuotaValue, queued_tasks: QuotaValue,
}, { additionalProperties: false });
const IdParams = Type.Object({ id: Type.String() });
const admin = { access: 'admin' as const };

function quotas(body: Record<string, number | null | undefined> | undefined) {
  return {
    projects: body?.projects ?? null, stored_bytes: body?.stored_bytes ?? null,
    running_tasks: body?.running_tasks ?? null, queued_tasks: body?.queued_tasks ?? null,
  };
}

export function adminRoutes(deps: Deps): FastifyPluginAsyncTypebox {
  const { store } = deps;
  return async (app) => {
    app.post('/admin/accounts', {
      config: admin,
      schema: {
        tags: ['admin'],
        body: Type.Object({ name: Type.String({ minLength: 1, maxLength: 200 }), quotas: Type.Optional(QuotasBody) }, { additionalProperties: false }),
      },
    }, async (request, reply) => {
      reply.code(201);
      return store.createAccount({ name: request.body.name, quotas: quotas(request.body.quotas) });
    });

    app.get('/admin/accounts', { config: admin, schema: { tags: ['admin'], querystring: PageQuery } }, async (request) => {
      const page = await store.listAccounts(pageQuery(request.query));
      const accounts = await Promise.all(page.items.map(async (a) => ({ ...a, usage: await store.usage(a.id) })));
      return { accounts, next_cursor: page.next_cursor };
    });

    app.put('/admin/accounts/:id/quotas', { config: admin, schema: { tags: ['admin'], params: IdParams, body: QuotasBody } }, async (request) => {
      const account = await store.setQuotas(request.params.id, quotas(request.body));
      if (!account) throw new AppError('account_not_found', { id: request.params.id });
      return account;
    });

    app.post('/admin/accounts/:id/keys', {
      config: admin,
      schema: {
        tags: ['admin'], params: IdParams,
        body: Type.Object({ role: Type.Union([Type.Literal('admin'), Type.Literal('member'), Type.Literal('viewer')]), name: Type.Optional(Type.String({ maxLength: 200 })) }, { additionalProperties: false }),
      },
    }, async (request, reply) => {
      const account = await store.getAccount(request.params.id);
      if (!account) throw new AppError('account_not_found', { id: request.params.id });
      const secret = newSecret('flk');
      const key = await store.createApiKey({
        accountId: account.id, role: request.body.role, name: request.body.name ?? request.body.role,
        keyHash: hashSecret(secret), keyPrefix: secret.slice(0, 8),
      });
      reply.code(201);
      return { ...key, key: secret, note: 'The key is shown only now; store it safely.' };
    });

    app.get('/admin/accounts/:id/keys', { config: admin, schema: { tags: ['admin'], params: IdParams } }, async (request) => {
      if (!(await store.getAccount(request.params.id))) throw new AppError('account_not_found', { id: request.params.id });
      return { keys: await store.listApiKeys(request.params.id) };
    });

    app.delete('/admin/keys/:id', { config: admin, schema: { tags: ['admin'], params: IdParams } }, async (request, reply) => {
      if (!(await store.revokeApiKey(request.params.id))) throw new AppError('key_not_found', { id: request.params.id });
      deps.auth.forget();
      return reply.code(204).send(null);
    });

    app.post('/admin/worker-tokens', {
      config: admin,
      schema: { tags: ['admin'], body: Type.Object({ name: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false }) },
    }, async (request, reply) => {
      const secret = newSecret('wkr');
      const token = await store.createWorkerToken({ name: request.body.name, tokenHash: hashSecret(secret) });
      reply.code(201);
      return { ...token, token: secret, note: 'The token is shown only now; pass it to `computalot worker --token`.' };
    });

    app.delete('/admin/worker-tokens/:id', { config: admin, schema: { tags: ['admin'], params: IdParams } }, async (request, reply) => {
      if (!(await store.revokeWorkerToken(request.params.id))) throw new AppError('key_not_found', { id: request.params.id });
      deps.auth.forget();
      return reply.code(204).send(null);
    });

    app.get('/admin/workers', { config: admin, schema: { tags: ['admin'] } }, async () => ({
      workers: await store.listWorkers(),
    }));
  };
}
