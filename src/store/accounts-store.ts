/** Accounts, API keys, worker tokens and workers. Keys are stored only as sha256 hashes. */
import { AppError } from '../core/errors.js';
import { newId } from '../core/ids.js';
import { isUniqueViolation } from './sql-errors.js';
import { nowIso } from '../core/clock.js';
import type { Store } from './port.js';
import { decodeCursor, pageOf, toAccount, toApiKey, toWorker, toWorkerToken } from './rows.js';
import type { StoreContext } from './tx.js';

type AccountVerbs = Pick<Store,
  | 'createAccount' | 'getAccount' | 'getAccountByName' | 'listAccounts' | 'setQuotas' | 'createApiKey'
  | 'findApiKeyByHash' | 'listApiKeys' | 'revokeApiKey' | 'countActiveAdminKeys' | 'createWorkerToken'
  | 'findWorkerTokenByHash' | 'revokeWorkerToken' | 'listWorkers' | 'usage'>;

export function accountVerbs({ conn }: StoreContext): AccountVerbs {
  const db = conn.db;
  return {
    async createAccount({ name, quotas }) {
      const row = { id: newId('acc'), name, quotas: JSON.stringify(quotas), running_tasks_cap: quotas.running_tasks, created_at: nowIso() };
      // Leases lock capped accounts from now on in this process (others learn at their next lease).
      if (quotas.running_tasks !== null) conn.leaseHints.caps = true;
      try {
        await db.insertInto('accounts').values(row).execute();
      } catch (err) {
        if (isUniqueViolation(err)) throw new AppError('account_exists', { name });
        throw err;
      }
      return toAccount(row);
    },
    async getAccount(id) {
      const row = await db.selectFrom('accounts').selectAll().where('id', '=', id).executeTakeFirst();
      return row ? toAccount(row) : null;
    },
    async getAccountByName(name) {
      const row = await db.selectFrom('accounts').selectAll().where('name', '=', name).executeTakeFirst();
      return row ? toAccount(row) : null;
    },
    async listAccounts({ limit, cursor }) {
      const after = decodeCursor(cursor);
      let q = db.selectFrom('accounts').selectAll().orderBy('id').limit(limit + 1);
      if (after !== null) q = q.where('id', '>', String(after));
      return pageOf((await q.execute()).map(toAccount), limit, (a) => a.id);
    },
    async setQuotas(accountId, quotas) {
      if (quotas.running_tasks !== null) conn.leaseHints.caps = true;
      await db.updateTable('accounts').set({ quotas: JSON.stringify(quotas), running_tasks_cap: quotas.running_tasks }).where('id', '=', accountId).execute();
      return this.getAccount(accountId);
    },
    async createApiKey({ accountId, role, name, keyHash, keyPrefix }) {
      const row = {
        id: newId('key'), account_id: accountId, role, name, key_hash: keyHash, key_prefix: keyPrefix,
        created_at: nowIso(), revoked_at: null,
      };
      await db.insertInto('api_keys').values(row).execute();
      return toApiKey(row);
    },
    async findApiKeyByHash(hash) {
      const row = await db.selectFrom('api_keys').selectAll()
        .where('key_hash', '=', hash).where('revoked_at', 'is', null).executeTakeFirst();
      return row ? toApiKey(row) : null;
    },
    async listApiKeys(accountId) {
      const rows = await db.selectFrom('api_keys').selectAll().where('account_id', '=', accountId).orderBy('id').execute();
      return rows.map(toApiKey);
    },
    async revokeApiKey(id) {
      const res = await db.updateTable('api_keys').set({ revoked_at: nowIso() })
        .where('id', '=', id).where('revoked_at', 'is', null).executeTakeFirst();
      return Number(res.numUpdatedRows) > 0;
    },
    async countActiveAdminKeys() {
      const row = await db.selectFrom('api_keys').select((eb) => eb.fn.countAll<number>().as('n'))
        .where('role', '=', 'admin').where('revoked_at', 'is', null).executeTakeFirstOrThrow();
      return Number(row.n);
    },
    async createWorkerToken({ name, tokenHash }) {
      const row = { id: newId('wtk'), name, token_hash: tokenHash, created_at: nowIso(), revoked_at: null };
      await db.insertInto('worker_tokens').values(row).execute();
      return toWorkerToken(row);
    },
    async findWorkerTokenByHash(hash) {
      const row = await db.selectFrom('worker_tokens').selectAll()
        .where('token_hash', '=', hash).where('revoked_at', 'is', null).executeTakeFirst();
      return row ? toWorkerToken(row) : null;
    },
    async revokeWorkerToken(id) {
      const res = await db.updateTable('worker_tokens').set({ revoked_at: nowIso() })
        .where('id', '=', id).where('revoked_at', 'is', null).executeTakeFirst();
      return Number(res.numUpdatedRows) > 0;
    },
    async listWorkers() {
      const rows = await db.selectFrom('workers').selectAll().orderBy('node_number').execute();
      return rows.map(toWorker);
    },
    async usage(accountId) {
      const projects = await db.selectFrom('projects').select((eb) => eb.fn.countAll<number>().as('n'))
        .where('account_id', '=', accountId).executeTakeFirstOrThrow();
      const bytes = await db.selectFrom('revisions').innerJoin('projects', 'projects.id', 'revisions.project_id')
        .select((eb) => eb.fn.sum<number>('revisions.size_bytes').as('n'))
        .where('projects.account_id', '=', accountId).where('revisions.tarball_deleted_at', 'is', null)
        .executeTakeFirstOrThrow();
      return { projects: Number(projects.n), stored_bytes: Number(bytes.n ?? 0) };
    },
  };
}
