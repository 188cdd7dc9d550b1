/**
 * Project reads of concurrent submits, batched: the submits that arrive in one turn of the event loop
 * read their projects in one query (per account) instead of one each. Under 10 concurrent single submits
 * on PostgreSQL this read was half of all statements, each a network round trip.
 *
 * No caching (DataLoader `cache: false`): every submit's read is issued after its request arrived, so a
 * submit always sees a push that completed before it was sent. (A shared in-flight read could have
 * started before that push committed.)
 */
import DataLoader from 'dataloader';
import type { Project } from '../core/model.js';
import type { Store } from '../store/port.js';

export type ProjectLoader = DataLoader<string, Project | null>;

const SEP = '\u0000';

export function projectLoader(store: Pick<Store, 'getProjects'>): ProjectLoader {
  return new DataLoader<string, Project | null>(async (keys) => {
    const byAccount = new Map<string, string[]>();
    for (const key of keys) {
      const [account, name] = key.split(SEP) as [string, string];
      byAccount.set(account, [...(byAccount.get(account) ?? []), name]);
    }
    const found = new Map<string, Project>();
    await Promise.all([...byAccount].map(async ([account, names]) => {
      for (const project of await store.getProjects(account, names)) found.set(project.account_id + SEP + project.name, project);
    }));
    return keys.map((key) => found.get(key) ?? null);
  }, { cache: false, batchScheduleFn: (callback) => setImmediate(callback) });
}

export const projectKey = (accountId: string, name: string) => accountId + SEP + name;
