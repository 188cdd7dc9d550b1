/** Jobs (SPEC §6): submit, batch, list, get, tasks, output, stream, cancel, results. */
import { createReadStream } from 'node:fs';
import { access } from 'node:fs/promises';
import { PassThrough } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { AppError } from '../../core/errors.js';
import { JOB_STATES } from '../../core/states.js';
import { authErrors, ErrorBody, Nullable } from '../../protocol/common.js';
import { BatchSubmitBody, BatchSubmitResult, JobObject, ResultsObject, SubmitJobBody, TaskObject } from '../../protocol/jobs.js';
import type { Deps } from '../../services/deps.js';
import { jobObject, liveWorkers, newJobObject, resultsObject, submitJobs, taskObject } from '../../services/jobs.js';
import { runningCapOf } from '../../services/task-quota.js';
import { outputPath } from '../../worker/in-process-client.js';
import { accountOf } from '../auth.js';
import { loadProject, pageQuery } from '../load.js';
import { openStream } from '../sse.js';

const IdParams = Type.Object({ id: Type.String() });
const Page = { limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })), cursor: Type.Optional(Type.String()) };

export function jobRoutes(deps: Deps, streams: Set<() => void>): FastifyPluginAsyncTypebox {
  const { store } = deps;
  const loadJob = async (request: Parameters<typeof accountOf>[0], id: string) => {
    const job = await store.getJob(accountOf(request), id);
    if (!job) throw new AppError('job_not_found', { id });
    return job;
  };
  return async (app) => {
    app.post('/jobs', {
      // The schema documents the body; validateSubmit (services/jobs) checks it, with the same problems
      // and paths as each job of a batch, so Ajv does not validate it a second time.
      validatorCompiler: () => () => true,
      schema: { tags: ['jobs'], body: SubmitJobBody, response: { 200: JobObject, 201: JobObject, ...authErrors, 409: ErrorBody, 422: ErrorBody, 429: ErrorBody } },
    }, async (request, reply) => {
      const [answer] = await submitJobs(deps, accountOf(request), [request.body], idempotencyHeader(request.headers['idempotency-key'], request.body));
      if (!answer || 'error' in answer) throw answer?.error ?? new AppError('internal_error', { reason: 'no answer' });
      if (answer.replayed) {
        reply.code(200);
        return jobObject((await store.getJob(accountOf(request), answer.id))!);
      }
      reply.code(201);
      return newJobObject(answer.id, answer.created_at, answer.job, answer.started);
    });

    app.post('/jobs/batch', {
      schema: { tags: ['jobs'], body: BatchSubmitBody, response: { 200: BatchSubmitResult, ...authErrors } },
    }, async (request) => {
      if (request.headers['idempotency-key'] !== undefined) {
        throw new AppError('invalid_request', { reason: 'The Idempotency-Key header is for single submits (POST /api/v1/jobs); give each job of a batch its own idempotency_key instead.' });
      }
      const answers = await submitJobs(deps, accountOf(request), request.body.jobs, null);
      return {
        jobs: answers.map((a, index) => ('error' in a ? { index, error: a.error.toBody().error } : { index, id: a.id })),
      };
    });

    app.get('/jobs', {
      schema: {
        tags: ['jobs'],
        querystring: Type.Object({ project: Type.Optional(Type.String()), status: Type.Optional(Type.Union(JOB_STATES.map((s) => Type.Literal(s)))), ...Page }),
        response: { 200: Type.Object({ jobs: Type.Array(JobObject), next_cursor: Nullable(Type.String()) }), ...authErrors },
      },
    }, async (request) => {
      const projectId = request.query.project ? (await loadProject(store, request, request.query.project)).id : undefined;
      const page = await store.listJobs(accountOf(request), { projectId, status: request.query.status }, pageQuery(request.query));
      const live = await liveWorkers(deps);
      const cap = page.items.some((j) => j.counts.queued > 0) ? await runningCapOf(deps, accountOf(request)) : null;
      const jobs = page.items.map((j) => jobObject(j, live, cap));
      return { jobs, next_cursor: page.next_cursor };
    });

    app.get('/jobs/:id', { schema: { tags: ['jobs'], params: IdParams, response: { 200: JobObject, ...authErrors } } },
      async (request) => {
        const job = await loadJob(request, request.params.id);
        const live = await liveWorkers(deps);
        // While tasks wait for a runtime, say what its preparation is doing (SPEC §6 status_reason).
        if (job.counts.preparing > 0 && job.counts.running === 0) {
          const reason = await store.preparingReason(job.project_id, job.content_hash);
          if (reason) return jobObject({ ...job, status_reason: reason }, live);
        }
        return jobObject(job, live, job.counts.queued > 0 ? await runningCapOf(deps, accountOf(request)) : null);
      });

    app.get('/jobs/:id/tasks', {
      schema: { tags: ['jobs'], params: IdParams, querystring: Type.Object(Page), response: { 200: Type.Object({ tasks: Type.Array(TaskObject), next_cursor: Nullable(Type.String()) }), ...authErrors } },
    }, async (request) => {
      const job = await loadJob(request, request.params.id);
      const page = await store.listTasks(job.id, { limit: request.query.limit ?? 50, cursor: request.query.cursor ?? null });
      return { tasks: page.items.map(taskObject), next_cursor: page.next_cursor };
    });

    app.get('/jobs/:id/output', { schema: { tags: ['jobs'], params: IdParams, description: 'stdout and stderr of each task\'s latest attempt, as text' } }, async (request, reply) => {
      const job = await loadJob(request, request.params.id);
      const rows = await store.resultRows(job.id);
      const out = new PassThrough();
      reply.type('text/plain; charset=utf-8').send(out);
      for (const task of rows) {
        if (out.destroyed) break; // the client went away: nothing more to read
        if (rows.length > 1) out.write(`=== task ${task.index} (attempt ${task.attempt}, ${task.status}) ===\n`);
        const path = outputPath(deps.config.dataDir, job.id, task.id, task.attempt);
        const exists = await access(path).then(() => true, () => false);
        if (exists) await copyInto(out, path);
        else if (task.output) out.write(task.output);
      }
      if (!out.destroyed) out.end();
      return reply;
    });

    app.get('/jobs/:id/stream', {
      schema: { tags: ['jobs'], params: IdParams, querystring: Type.Object({ since: Type.Optional(Type.Integer({ minimum: 0 })) }), description: 'SSE of the job\'s events from job.created; ends after job.completed' },
    }, async (request, reply) => {
      const job = await loadJob(request, request.params.id);
      await openStream(request, reply, {
        store, filter: { jobId: job.id }, heartbeatMs: deps.config.sseHeartbeatMs, startAt: 'beginning', firstEvent: 'job.created', registry: streams,
        endAfter: (e) => e.type === 'job.completed',
        done: async () => ['completed', 'partial', 'failed', 'cancelled'].includes((await store.getJob(job.account_id, job.id))?.status ?? ''),
      });
    });

    app.post('/jobs/:id/cancel', {
      schema: { tags: ['jobs'], params: IdParams, response: { 200: Type.Object({ id: Type.String(), status: Type.String(), cancelled_tasks: Type.Integer(), cancelling_tasks: Type.Integer() }), ...authErrors } },
    }, async (request) => {
      const job = await loadJob(request, request.params.id);
      const res = await store.cancelJob(job.id, 'cancelled by request');
      deps.nudgeWorkers();
      const after = await loadJob(request, job.id);
      return { id: job.id, status: after.status, ...res };
    });

    app.get('/results/:job_id', {
      schema: { tags: ['jobs'], params: Type.Object({ job_id: Type.String() }), response: { 200: ResultsObject, ...authErrors } },
    }, async (request) => {
      const job = await loadJob(request, request.params.job_id);
      return resultsObject(job, await store.resultRows(job.id));
    });
  };
}

/**
 * Copies one output file into the response without ending it. Settles when the file is read, fails to
 * read, or the response closes first (a client that stops reading): then the file is closed here, since
 * an unpiped read stream never ends on its own, and each aborted download kept a descriptor open.
 */
function copyInto(out: PassThrough, path: string): Promise<void> {
  return new Promise<void>((resolve) => {
    // Closed while the file's existence was checked: its 'close' has been emitted already.
    if (out.destroyed) return resolve();
    const file = createReadStream(path);
    const settle = () => {
      out.off('close', abandon);
      resolve();
    };
    const abandon = () => {
      file.destroy();
      settle();
    };
    file.on('end', settle).on('error', settle);
    out.on('close', abandon);
    file.pipe(out, { end: false });
  });
}

/**
 * The Idempotency-Key header (SPEC §6: the same key as the body's idempotency_key), held to the same
 * rules: 1 to 200 characters. Sent with a different idempotency_key in the body it is refused, as the
 * request names two keys and either could be the one meant.
 */
function idempotencyHeader(header: string | string[] | undefined, body: unknown): string | null {
  if (header === undefined) return null;
  const key = Array.isArray(header) ? header.join(', ') : header;
  if (key.length === 0 || key.length > 200) {
    throw new AppError('invalid_request', { reason: `The Idempotency-Key header must be 1 to 200 characters; it has ${key.length}.` });
  }
  const inBody = typeof body === 'object' && body !== null ? (body as Record<string, unknown>).idempotency_key : undefined;
  if (typeof inBody === 'string' && inBody !== key) {
    throw new AppError('invalid_request', { reason: 'The Idempotency-Key header and the body\'s idempotency_key differ; send the key once, in either place.' });
  }
  return key;
}
