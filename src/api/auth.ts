/**
 * Bearer-token authentication for every /api/v1 route (SPEC §2). API keys (`flk_…`) and worker tokens
 * (`wkr_…`) are looked up by their sha256; the plaintext is never stored or logged. A route declares the
 * access it needs in `config.access`; the default is `read` for GET/HEAD and `write` otherwise.
 *
 * Missing or unknown token → 401; role too weak → 403. Resources of other accounts are never reached:
 * every lookup below is scoped by the principal's account, so they answer 404 like absent ones.
 * A verified key is cached for a few seconds; revocation in this process drops it at once.
 */
import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AppError } from '../core/errors.js';
import type { Role, Store } from '../store/port.js';

export type Access = 'read' | 'write' | 'admin' | 'worker';

export type Principal =
  | { kind: 'key'; keyId: string; accountId: string; role: Role }
  | { kind: 'worker'; tokenId: string };

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
  interface FastifyContextConfig {
    access?: Access;
    public?: boolean;
  }
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

const CACHE_MS = 5_000;

export class Authenticator {
  private readonly cache = new Map<string, { principal: Principal; until: number }>();
  constructor(private readonly store: Store) {}

  async resolve(token: string): Promise<Principal | null> {
    const hash = hashSecret(token);
    const hit = this.cache.get(hash);
    if (hit && hit.until > Date.now()) return hit.principal;
    let principal: Principal | null = null;
    if (token.startsWith('flk_')) {
      const key = await this.store.findApiKeyByHash(hash);
      if (key) principal = { kind: 'key', keyId: key.id, accountId: key.account_id, role: key.role };
    } else if (token.startsWith('wkr_')) {
      const wt = await this.store.findWorkerTokenByHash(hash);
      if (wt) principal = { kind: 'worker', tokenId: wt.id };
    }
    if (principal) {
      if (this.cache.size > 10_000) this.cache.clear();
      this.cache.set(hash, { principal, until: Date.now() + CACHE_MS });
    }
    return principal;
  }

  forget(): void {
    this.cache.clear();
  }
}

function tokenOf(request: FastifyRequest): string | null {
  const header = request.headers.authorization;
  if (!header) return null;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1] ?? null;
}

const NEEDED: Record<Access, Role[]> = {
  read: ['viewer', 'member', 'admin'],
  write: ['member', 'admin'],
  admin: ['admin'],
  worker: [],
};

export function installAuth(app: FastifyInstance, auth: Authenticator): void {
  app.decorateRequest('principal', null);
  app.addHook('onRequest', async (request) => {
    const config = request.routeOptions.config;
    // Decide by the route the router matched, not by the raw URL: the router decodes percent-escapes, so
    // `/%61pi/v1/admin/accounts` reaches `/api/v1/admin/accounts` while its raw URL does not start with
    // `/api/v1`. Unmatched requests (404) have no route and fall back to the raw URL.
    const path = request.routeOptions.url ?? request.url;
    if (config.public || !path.startsWith('/api/v1')) return;
    const token = tokenOf(request);
    if (!token) throw new AppError('unauthorized', { reason: 'No bearer token was sent.' });
    const principal = await auth.resolve(token);
    if (!principal) throw new AppError('unauthorized', { reason: 'The token is unknown or revoked.' });
    request.principal = principal;
    const access: Access = config.access ?? (request.method === 'GET' || request.method === 'HEAD' ? 'read' : 'write');
    if (principal.kind === 'worker') {
      if (access !== 'worker') {
        throw new AppError('forbidden', { role: 'worker', action: 'use this route (worker tokens open only the worker routes)', needed: 'an API key (flk_…)' });
      }
      return;
    }
    if (!NEEDED[access].includes(principal.role)) {
      const action = access === 'admin' ? 'use the admin API' : access === 'worker' ? 'use the worker routes' : 'change anything';
      throw new AppError('forbidden', { role: principal.role, action, needed: NEEDED[access].join(' or ') || 'a worker token' });
    }
  });
}

/** The caller's account; only key principals reach account-scoped routes. */
export function accountOf(request: FastifyRequest): string {
  const p = request.principal;
  if (!p || p.kind !== 'key') throw new AppError('unauthorized', { reason: 'This route needs an API key.' });
  return p.accountId;
}
