/**
 * The first admin key (SPEC §1). COMPUTALOT_ADMIN_TOKEN, if set, is registered as an admin key (stored
 * hashed, never printed). Otherwise, on the first start only (no admin key exists), a key is created,
 * printed once to stdout, and written to `<data dir>/admin-token` with mode 0600.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { newSecret } from '../core/ids.js';
import { hashSecret } from '../api/auth.js';
import type { Store } from '../store/port.js';

const ADMIN_ACCOUNT = 'admin';

export async function bootstrapAdmin(store: Store, opts: { adminToken: string | null; dataDir: string }): Promise<{ created: string | null }> {
  const account = (await store.getAccountByName(ADMIN_ACCOUNT))
    ?? (await createAdminAccount(store));
  if (opts.adminToken) {
    if (!opts.adminToken.startsWith('flk_')) {
      throw new Error('COMPUTALOT_ADMIN_TOKEN must start with flk_ (like every API key); e.g. flk_ followed by 32+ random characters.');
    }
    const hash = hashSecret(opts.adminToken);
    if (!(await store.findApiKeyByHash(hash))) {
      await store.createApiKey({ accountId: account.id, role: 'admin', name: 'COMPUTALOT_ADMIN_TOKEN', keyHash: hash, keyPrefix: opts.adminToken.slice(0, 8) });
    }
    return { created: null };
  }
  if ((await store.countActiveAdminKeys()) > 0) return { created: null };
  const secret = newSecret('flk');
  await store.createApiKey({ accountId: account.id, role: 'admin', name: 'bootstrap', keyHash: hashSecret(secret), keyPrefix: secret.slice(0, 8) });
  await writeFile(join(opts.dataDir, 'admin-token'), `${secret}\n`, { mode: 0o600 });
  return { created: secret };
}

async function createAdminAccount(store: Store) {
  try {
    return await store.createAccount({ name: ADMIN_ACCOUNT, quotas: { projects: null, stored_bytes: null, running_tasks: null, queued_tasks: null } });
  } catch (err) {
    // Another API process on the same database created it first.
    const existing = await store.getAccountByName(ADMIN_ACCOUNT);
    if (existing) return existing;
    throw err;
  }
}
