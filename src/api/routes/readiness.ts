/** Readiness routes (SPEC §3, §5): status, details, init, invalidate, cancel-queued. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { AppError } from '../../core/errors.js';
import { isLive } from '../../core/readiness.js';
import { authErrors, ErrorBody, NameParams } from '../../protocol/common.js';
import { CancelQueuedResult, InitResult, InvalidateResult, StatusDetailsObject, StatusObject } from '../../protocol/projects.js';
import type { Deps } from '../../services/deps.js';
import { projectReadiness } from '../../services/readiness.js';
import { loadProject } from '../load.js';

export function readinessRoutes(deps: Deps): FastifyPluginAsyncTypebox {
  const { store } = deps;
  return async (app) => {
    app.get('/projects/:name/status', {
      schema: { tags: ['readiness'], params: NameParams, response: { 200: StatusObject, ...authErrors } },
    }, async (request) => {
      const { readiness } = await projectReadiness(deps, await loadProject(store, request, request.params.name));
      const { nodes: _nodes, recommended_action: _action, ...status } = readiness;
      return status;
    });

    app.get('/projects/:name/status/details', {
      schema: { tags: ['readiness'], params: NameParams, response: { 200: StatusDetailsObject, ...authErrors } },
    }, async (request) => {
      const { readiness } = await projectReadiness(deps, await loadProject(store, request, request.params.name));
      return readiness;
    });

    app.post('/projects/:name/init', {
      schema: {
        tags: ['readiness'], params: NameParams,
        response: { 202: InitResult, ...authErrors, 409: ErrorBody },
      },
    }, async (request, reply) => {
      const project = await loadProject(store, request, request.params.name);
      const revision = project.active_revision_id ? await store.getRevision(project.active_revision_id) : null;
      if (!revision) throw new AppError('project_not_pushed', { name: project.name });
      const snapshot = await store.readinessSnapshot(project, revision.content_hash);
      const warm = new Set(snapshot.runtimes.filter((r) => r.state === 'warm').map((r) => r.worker_id));
      const live = snapshot.workers.filter((w) => isLive(w, Date.now()));
      const targets = live.filter((w) => !warm.has(w.id)).map((w) => w.id);
      await store.requestInit(project, revision.content_hash, targets);
      deps.nudgeWorkers();
      reply.code(202);
      return {
        name: project.name, content_hash: revision.content_hash, targeted_workers: targets.length,
        already_warm: live.length - targets.length,
      };
    });

    app.post('/projects/:name/invalidate', {
      schema: { tags: ['readiness'], params: NameParams, response: { 200: InvalidateResult, ...authErrors } },
    }, async (request) => {
      const project = await loadProject(store, request, request.params.name);
      await store.invalidate(project);
      const revision = project.active_revision_id ? await store.getRevision(project.active_revision_id) : null;
      return { name: project.name, invalidated: true, content_hash: revision?.content_hash ?? null };
    });

    app.put('/projects/:name/cancel-queued', {
      schema: { tags: ['readiness'], params: NameParams, response: { 200: CancelQueuedResult, ...authErrors } },
    }, async (request) => store.cancelQueued(await loadProject(store, request, request.params.name)));
  };
}
