/** Loads a resource the caller may see, scoped by the caller's account: anything else is a 404. */
import type { FastifyRequest } from 'fastify';
import { AppError } from '../core/errors.js';
import type { Project, Store } from '../store/port.js';
import { accountOf } from './auth.js';

export async function loadProject(store: Store, request: FastifyRequest, name: string): Promise<Project> {
  const project = await store.getProject(accountOf(request), name);
  if (!project) throw new AppError('project_not_found', { name });
  return project;
}

export function pageQuery(query: { limit?: number; cursor?: string }) {
  return { limit: query.limit ?? 50, cursor: query.cursor ?? null };
}
