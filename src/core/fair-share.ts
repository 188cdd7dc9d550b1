/**
 * Which queued tasks a lease takes when more than one account, or more than one project, has work queued
 * (SPEC §8: "shares workers fairly between accounts and projects"). Pure.
 *
 * The rule, slot by slot (water-filling):
 * - The slot goes to the account holding the fewest leased tasks (preparing or running, the ones this
 *   lease already gave it included) among accounts with a candidate left and room under their
 *   running_tasks cap. Ties go to the account whose next task became available first, then by id.
 * - Within that account: its highest priority first (priority orders an account's own work; it does not
 *   let one account pass another), then the project holding the fewest leased tasks, then the task that
 *   became available first, then id.
 *
 * So an account that queued 10,000 tasks and one that queued 10 later share the slots as they free: the
 * second's tasks start next, not after the first's. Fair in slots held, not in CPU time: a slot is a slot.
 *
 * Candidates come per (account, project) in that project's queue order (priority desc, available_at, id);
 * a lease of `want` tasks needs no more than `want` of each.
 */

export interface FairCandidate {
  id: string;
  job_id: string;
  account_id: string;
  project_id: string;
  priority: number;
  available_at: string;
}

/** Leased tasks (preparing or running) held now per account and project. */
export interface HeldCount { account_id: string; project_id: string; n: number }

/** `room`: for accounts with a running_tasks cap, how many more tasks each may hold; others are unbounded. */
export function fairOrder<C extends FairCandidate>(candidates: readonly C[], held: readonly HeldCount[], want: number, room: ReadonlyMap<string, number> = new Map()): C[] {
  const accounts = new Map<string, { held: number; room: number; projects: Map<string, { held: number; queue: C[]; next: number }> }>();
  for (const h of held) {
    const account = accountOf(accounts, h.account_id, room);
    account.held += h.n;
    projectOf(account.projects, h.project_id).held += h.n;
  }
  for (const c of candidates) projectOf(accountOf(accounts, c.account_id, room).projects, c.project_id).queue.push(c);

  const taken: C[] = [];
  while (taken.length < want) {
    let best: { id: string; held: number; project: { held: number; queue: C[]; next: number }; task: C } | null = null;
    for (const [id, account] of accounts) {
      if (account.room <= 0) continue;
      const project = nextProject(account.projects);
      if (!project) continue;
      const task = project.queue[project.next]!;
      if (!best || account.held < best.held || (account.held === best.held && earlier(task, best.task))) best = { id, held: account.held, project, task };
    }
    if (!best) break;
    const account = accounts.get(best.id)!;
    account.held += 1;
    account.room -= 1;
    best.project.held += 1;
    best.project.next += 1;
    taken.push(best.task);
  }
  return taken;
}

function accountOf<C>(accounts: Map<string, { held: number; room: number; projects: Map<string, { held: number; queue: C[]; next: number }> }>, id: string, room: ReadonlyMap<string, number>) {
  let account = accounts.get(id);
  if (!account) {
    account = { held: 0, room: room.get(id) ?? Infinity, projects: new Map() };
    accounts.set(id, account);
  }
  return account;
}

function projectOf<C>(projects: Map<string, { held: number; queue: C[]; next: number }>, id: string) {
  let project = projects.get(id);
  if (!project) {
    project = { held: 0, queue: [], next: 0 };
    projects.set(id, project);
  }
  return project;
}

/** An account's next project: the highest priority at its head, then the fewest held, then the oldest head. */
function nextProject<C extends FairCandidate>(projects: Map<string, { held: number; queue: C[]; next: number }>) {
  let best: { held: number; queue: C[]; next: number } | null = null;
  for (const project of projects.values()) {
    const head = project.queue[project.next];
    if (!head) continue;
    if (!best) { best = project; continue; }
    const other = best.queue[best.next]!;
    if (head.priority !== other.priority ? head.priority > other.priority
      : project.held !== best.held ? project.held < best.held : earlier(head, other)) best = project;
  }
  return best;
}

/** Queue order between two tasks of equal standing: available first, then id. */
function earlier(a: FairCandidate, b: FairCandidate): boolean {
  return a.available_at !== b.available_at ? a.available_at < b.available_at : a.id < b.id;
}
