/**
 * POST /projects/:name/push takes the tarball as the raw body, whatever its Content-Type (curl's
 * --data-binary sends form-urlencoded). This plugin replaces every body parser with a pass-through, so
 * the body is streamed by intake and never buffered by Fastify.
 */
import type { Readable } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { authErrors, ErrorBody, NameParams } from '../../protocol/common.js';
import { PushResult } from '../../protocol/projects.js';
import type { Deps } from '../../services/deps.js';
import { pushProject } from '../../services/push.js';
import { loadProject } from '../load.js';

export function pushRoutes(deps: Deps): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', (_request, payload, done) => done(null, payload));
    app.post('/projects/:name/push', {
      schema: {
        tags: ['projects'],
        description: 'Upload the code tarball (tar or tar.gz) as the raw request body: `curl --data-binary @code.tar.gz`.',
        params: NameParams,
        response: { 200: PushResult, 201: PushResult, ...authErrors, 400: ErrorBody, 409: ErrorBody, 413: ErrorBody, 415: ErrorBody, 422: ErrorBody, 429: ErrorBody },
      },
    }, async (request, reply) => {
      const project = await loadProject(deps.store, request, request.params.name);
      const length = request.headers['content-length'];
      const body = (request.body as Readable | undefined) ?? request.raw;
      try {
        const { status, body: result } = await pushProject(deps, project, {
          contentType: request.headers['content-type'],
          contentLength: length !== undefined ? Number(length) : null,
          body,
        });
        reply.code(status);
        return result;
      } catch (err) {
        // A refused push may leave body unread (a bomb, an endless upload): answer, then close the socket
        // instead of reading the rest.
        if (!request.raw.complete) reply.header('Connection', 'close');
        throw err;
      }
    });
  };
}
