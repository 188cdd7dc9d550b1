/**
 * Project reads of submits (batched on PostgreSQL; kept on both stores).
 *
 * Batched: the submits that arrive in one turn of the event loop read their projects in one query (per
 * account) instead of one each. Under 10 concurrent single submits this read was half of all statements,
 * each a network round trip.
 *
 * Kept: a project read here is kept, and a later submit may be planned from it without a read (one round
 * trip less on the dispatch path; paired runs in docs/decisions.md). That is only safe because such
 * a job carries the project's env and revision as planned (`NewJob.project_env`) and the store's insert
 * creates nothing unless the project still matches them, answering `stale`; the submit then plans again
 * from a fresh read (`fresh`). So a submit still sees a push, an env change or a delete that completed
 * before it was sent. A kept answer is never a missing project: those are read every time.
 *
 * DataLoader runs without its own cache (`cache: false`): kept projects live in one map that the store's
 * answers correct, not in per-key promises that could hand out a read started before a push committed.
 */
import DataLoader from 'dataloader';
import type { Project } from '../core/model.js';
import type { Store } from '../store/port.js';

export interface ProjectLookup {
  project: Project | null;
  /** Answered from a kept read: the job must carry `project_env` so that its insert checks it. */
  kept: boolean;
}

const SEP = '\u0000';
const KEEP_AT_MOST = 10_000;

export const projectKey = (accountId: string, name: string) => accountId + SEP + name;

export class ProjectLookups {
  private readonly kept = new Map<string, Project>();
  private readonly loader: DataLoader<string, Project | null>;

  constructor(store: Pick<Store, 'getProjects'>) {
    this.loader = new DataLoader<string, Project | null>(async (keys) => {
      const byAccount = new Map<string, string[]>();
      for (const key of keys) {
        const [account, name] = key.split(SEP) as [string, string];
        byAccount.set(account, [...(byAccount.get(account) ?? []), name]);
      }
      const found = new Map<string, Project>();
      await Promise.all([...byAccount].map(async ([account, names]) => {
        for (const project of await store.getProjects(account, names)) found.set(projectKey(project.account_id, project.name), project);
      }));
      return keys.map((key) => {
        const project = found.get(key) ?? null;
        if (project) this.keep(key, project);
        else this.kept.delete(key);
        return project;
      });
    }, { cache: false, batchScheduleFn: (callback) => setImmediate(callback) });
  }

  /** The project, kept or read (`fresh`: always read). Either way after a turn of the event loop, with the other submits of that turn. */
  async load(key: string, fresh = false): Promise<ProjectLookup> {
    const kept = fresh ? undefined : this.kept.get(key);
    if (!kept) return { project: await this.loader.load(key), kept: false };
    // The same turn as the reads, so concurrent submits still meet in one group commit (submit-batcher.ts).
    await new Promise((resolve) => setImmediate(resolve));
    return { project: kept, kept: true };
  }

  /**
   * SQLite: kept the same way, but a read goes at once (an in-process call: waiting a turn to batch reads
   * cost single submits 7.4k → 6.5k/s, docs/decisions.md). A kept answer saves a read per submit; the
   * insert's guard reads each project once per group commit instead.
   */
  async loadNow(key: string, fresh: boolean, read: () => Promise<Project | null>): Promise<ProjectLookup> {
    const kept = fresh ? undefined : this.kept.get(key);
    if (kept) return { project: kept, kept: true };
    const project = await read();
    if (project) this.keep(key, project);
    else this.kept.delete(key);
    return { project, kept: false };
  }

  /** Drops a kept project (the store said a job planned from it was stale). */
  forget(key: string): void {
    this.kept.delete(key);
  }

  private keep(key: string, project: Project): void {
    if (this.kept.size >= KEEP_AT_MOST && !this.kept.has(key)) this.kept.clear();
    this.kept.set(key, project);
  }
}
