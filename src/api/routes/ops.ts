/**
 * Operations (SPEC §12): /health and /openapi.json are public; /metrics answers an admin key or a
 * loopback caller; /docs is the API reference page (Swagger UI, served from the package: no CDN).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { AppError } from '../../core/errors.js';
import { isLive } from '../../core/readiness.js';
import type { Deps } from '../../services/deps.js';
import { registry } from '../../services/metrics.js';
import { version } from '../../version.js';

const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);

export function opsRoutes(deps: Deps): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get('/health', {
      config: { public: true },
      schema: {
        tags: ['operations'],
        response: {
          200: Type.Object({
            status: Type.String(), version: Type.String(), store: Type.String(),
            runtime: Type.Object({ configured: Type.String(), kind: Type.String(), engine: Type.Union([Type.String(), Type.Null()]), warning: Type.Union([Type.String(), Type.Null()]) }),
            workers_online: Type.Integer(),
          }),
        },
      },
    }, async () => {
      const now = Date.now();
      const workers = await deps.store.listWorkers();
      return {
        status: 'ok', version, store: deps.store.dialect, runtime: deps.runtime,
        workers_online: workers.filter((w) => isLive(w, now)).length,
      };
    });

    app.get('/metrics', { config: { public: true }, schema: { tags: ['operations'] } }, async (request, reply) => {
      if (!LOOPBACK.has(request.ip)) {
        const header = request.headers.authorization ?? '';
        const token = header.replace(/^Bearer\s+/i, '').trim();
        const principal = token ? await deps.auth.resolve(token) : null;
        if (!principal) throw new AppError('unauthorized', { reason: '/metrics answers loopback callers and admin keys only.' });
        if (principal.kind !== 'key' || principal.role !== 'admin') {
          throw new AppError('forbidden', { role: principal.kind === 'key' ? principal.role : 'worker', action: 'read /metrics from outside this machine', needed: 'admin' });
        }
      }
      return reply.type(registry.contentType).send(await registry.metrics());
    });

    app.get('/openapi.json', { config: { public: true }, schema: { hide: true } }, async () => app.swagger());
  };
}
