/** Project CRUD and revision history (SPEC §3). Routes validate, call store + services, and answer. */
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { AppError } from '../../core/errors.js';
import { authErrors, ErrorBody, NameParams, PageQuery } from '../../protocol/common.js';
import { CreateProjectBody, ProjectObject, RevisionObject, UpdateProjectBody, UPDATABLE_PROJECT_FIELDS } from '../../protocol/projects.js';
import type { Deps } from '../../services/deps.js';
import { projectObject } from '../../services/readiness.js';
import { accountOf } from '../auth.js';
import { loadProject, pageQuery } from '../load.js';

export function projectRoutes(deps: Deps): FastifyPluginAsyncTypebox {
  const { store } = deps;
  return async (app) => {
    app.post('/projects', {
      schema: { tags: ['projects'], body: CreateProjectBody, response: { 201: ProjectObject, ...authErrors, 409: ErrorBody, 422: ErrorBody, 429: ErrorBody } },
    }, async (request, reply) => {
      const accountId = accountOf(request);
      const account = await store.getAccount(accountId);
      const limit = account?.quotas.projects ?? null;
      if (limit !== null) {
        const used = (await store.usage(accountId)).projects;
        if (used >= limit) throw new AppError('quota_exceeded', { quota: 'projects', limit, used }, { quota: 'projects', limit, used });
      }
      const body = request.body;
      const project = await store.createProject(accountId, {
        name: body.name, remote_dir: body.remote_dir ?? null, description: body.description ?? null, env: body.env ?? {},
      });
      reply.code(201);
      return projectObject(deps, project);
    });

    app.get('/projects', {
      schema: { tags: ['projects'], querystring: PageQuery, response: { 200: Type.Object({ projects: Type.Array(ProjectObject), next_cursor: Type.Union([Type.String(), Type.Null()]) }), ...authErrors } },
    }, async (request) => {
      const page = await store.listProjects(accountOf(request), pageQuery(request.query));
      return { projects: await Promise.all(page.items.map((p) => projectObject(deps, p))), next_cursor: page.next_cursor };
    });

    app.get('/projects/:name', {
      schema: { tags: ['projects'], params: NameParams, response: { 200: ProjectObject, ...authErrors } },
    }, async (request) => projectObject(deps, await loadProject(store, request, request.params.name)));

    app.put('/projects/:name', {
      schema: { tags: ['projects'], params: NameParams, body: UpdateProjectBody, response: { 200: ProjectObject, ...authErrors, 400: ErrorBody } },
    }, async (request) => {
      const project = await loadProject(store, request, request.params.name);
      const body = (request.body ?? {}) as Record<string, unknown>;
      const extra = Object.keys(body).filter((k) => !(UPDATABLE_PROJECT_FIELDS as readonly string[]).includes(k));
      if (extra.length > 0) {
        throw new AppError('unknown_field', { fields: extra.join(', '), allowed: UPDATABLE_PROJECT_FIELDS.join(', ') }, { fields: extra });
      }
      const updated = await store.updateProject(project, request.body);
      return projectObject(deps, updated);
    });

    app.delete('/projects/:name', {
      schema: { tags: ['projects'], params: NameParams, response: { 204: Type.Null(), ...authErrors, 409: ErrorBody } },
    }, async (request, reply) => {
      const project = await loadProject(store, request, request.params.name);
      const { tarballs } = await store.deleteProject(project);
      await Promise.all(tarballs.map((sha) => deps.blobs.remove(sha)));
      return reply.code(204).send(null);
    });

    app.get('/projects/:name/revisions', {
      schema: { tags: ['projects'], params: NameParams, querystring: PageQuery, response: { 200: Type.Object({ revisions: Type.Array(RevisionObject), next_cursor: Type.Union([Type.String(), Type.Null()]) }), ...authErrors } },
    }, async (request) => {
      const project = await loadProject(store, request, request.params.name);
      const page = await store.listRevisions(project.id, pageQuery(request.query));
      return {
        revisions: page.items.map((r) => ({
          revision: r.revision, content_hash: r.content_hash, published_at: r.published_at, size_bytes: r.size_bytes,
          file_count: r.file_count, active: r.id === project.active_revision_id,
          tarball_available: r.tarball_deleted_at === null, manifest_warnings: r.manifest_warnings,
        })),
        next_cursor: page.next_cursor,
      };
    });
  };
}
