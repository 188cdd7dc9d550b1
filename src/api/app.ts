/**
 * Builds the Fastify app: error shape, auth, OpenAPI, and one plugin per resource under /api/v1.
 * No business rules here; routes call services, core and the store.
 */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyInstance } from 'fastify';
import { AppError } from '../core/errors.js';
import { tooDeepAt } from '../core/json-depth.js';
import type { Deps } from '../services/deps.js';
import { httpDuration, httpRequests } from '../services/metrics.js';
import { version } from '../version.js';
import { installAuth } from './auth.js';
import { installErrorHandling, sendError, tooDeep } from './error-handler.js';
import { installValidators } from './validators.js';
import { adminRoutes } from './routes/admin.js';
import { jobRoutes } from './routes/jobs.js';
import { kvRoutes } from './routes/kv.js';
import { opsRoutes } from './routes/ops.js';
import { projectRoutes } from './routes/projects.js';
import { pushRoutes } from './routes/push.js';
import { readinessRoutes } from './routes/readiness.js';
import { streamRoutes } from './routes/streams.js';

export const JSON_BODY_LIMIT = 10 * 1024 * 1024;

export interface App {
  app: FastifyInstance;
  /** Stops taking requests (503 shutting_down) and ends open streams. */
  beginShutdown(): void;
}

export async function buildApp(deps: Deps, opts: { logger: boolean | object } = { logger: false }): Promise<App> {
  const app = Fastify({
    logger: opts.logger,
    bodyLimit: JSON_BODY_LIMIT,
    return503OnClosing: false,
    // Errors before routing (a URL that does not decode, a bad header) get the same error shape.
    frameworkErrors: (error, request, reply) => {
      const url = request.url.split('?')[0] ?? '';
      const badKey = error.code === 'FST_ERR_BAD_URL' && /\/api\/v1\/projects\/[^/]+\/kv\//.test(url);
      const appError = badKey
        ? new AppError('invalid_kv_key', { reason: 'its percent-encoding does not decode to UTF-8' })
        : new AppError('invalid_request', { reason: error.code === 'FST_ERR_BAD_URL' ? `The URL ${url} does not decode (bad percent-encoding).` : error.message });
      void sendError(reply, appError);
    },
    forceCloseConnections: 'idle',
  }).withTypeProvider<TypeBoxTypeProvider>();

  let shuttingDown = false;
  const streams = new Set<() => void>();

  app.addHook('onRequest', async (request, reply) => {
    if (shuttingDown) return sendError(reply.header('Connection', 'close'), new AppError('shutting_down'));
    return undefined;
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    httpRequests.inc({ method: request.method, route, status: reply.statusCode });
    httpDuration.observe({ method: request.method, route }, reply.elapsedTime / 1000);
  });
  installValidators(app);
  installJsonParser(app);
  installErrorHandling(app, JSON_BODY_LIMIT);
  installAuth(app, deps.auth);

  await app.register(swagger, {
    openapi: {
      info: { title: 'Computalot API', version, description: 'Self-hosted Computalot: projects, pushes, readiness, KV, streams.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'API key flk_… or worker token wkr_…' } } },
      security: [{ bearer: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { url: '/openapi.json' } as Record<string, unknown> });

  await app.register(opsRoutes(deps));
  await app.register(async (v1) => {
    await v1.register(projectRoutes(deps));
    await v1.register(pushRoutes(deps));
    await v1.register(readinessRoutes(deps));
    await v1.register(kvRoutes(deps));
    await v1.register(streamRoutes(deps, streams));
    await v1.register(jobRoutes(deps, streams));
    await v1.register(adminRoutes(deps));
  }, { prefix: '/api/v1' });

  return {
    app,
    beginShutdown() {
      shuttingDown = true;
      for (const close of [...streams]) close();
    },
  };
}

/**
 * JSON bodies: Fastify's own parser (prototype-poisoning checks included), then the nesting limit
 * (core/json-depth.ts). Fastify's text/plain parser goes: a JSON body sent as text/plain reached the
 * routes as a string and got a misleading 422 "must be a JSON object"; now it is a 415 saying which
 * Content-Type to send (SPEC §2). Routes that take other bodies (push, KV) register their own parsers.
 */
function installJsonParser(app: FastifyInstance): void {
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser(['application/json', 'text/plain']);
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    parse(request, body as string, (err: Error | null, value?: unknown) => {
      if (err) return done(err, undefined);
      const deep = tooDeepAt(value);
      return deep === null ? done(null, value) : done(tooDeep(deep), undefined);
    });
  });
}

