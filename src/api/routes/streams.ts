/** GET /projects/:name/stream: every event of the project, live, resumable (SPEC §10). */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { authErrors } from '../../protocol/common.js';
import type { Deps } from '../../services/deps.js';
import { loadProject } from '../load.js';
import { openStream } from '../sse.js';

export function streamRoutes(deps: Deps, registry: Set<() => void>): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get('/projects/:name/stream', {
      schema: {
        tags: ['streams'],
        description: 'text/event-stream of project.*, job.*, task.* and kv.* events. Resume with Last-Event-ID or ?since=.',
        params: Type.Object({ name: Type.String() }),
        querystring: Type.Object({ since: Type.Optional(Type.Integer({ minimum: 0 })) }),
        response: { ...authErrors },
      },
    }, async (request, reply) => {
      const project = await loadProject(deps.store, request, request.params.name);
      await openStream(request, reply, {
        store: deps.store, filter: { projectId: project.id }, heartbeatMs: deps.config.sseHeartbeatMs,
        startAt: 'now', registry,
      });
    });
  };
}
