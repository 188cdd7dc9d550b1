/** A small JSON client over Node's fetch, and account setup through the admin API. */
import { ADMIN_TOKEN } from './server.js';

export interface Answer<T = any> { status: number; body: T; headers: Headers; text: string }

export async function call<T = any>(base: string, method: string, path: string, opts: { token?: string | null; json?: unknown; body?: BodyInit | Buffer; headers?: Record<string, string> } = {}): Promise<Answer<T>> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (opts.token !== null) headers.authorization = `Bearer ${opts.token ?? ADMIN_TOKEN}`;
  let body = opts.body as BodyInit | undefined;
  if (opts.json !== undefined) {
    headers['content-type'] ??= 'application/json';
    body = JSON.stringify(opts.json);
  }
  const res = await fetch(base + path, { method, headers, body, duplex: 'half' } as RequestInit);
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body: parsed as T, headers: res.headers, text };
}

export interface TestAccount { id: string; member: string; viewer: string; admin: string }

/** An account with a member key and a viewer key, made through the admin API as a user would. */
export async function makeAccount(base: string, name: string): Promise<TestAccount> {
  const acc = await call(base, 'POST', '/api/v1/admin/accounts', { json: { name } });
  if (acc.status !== 201) throw new Error(`account: ${acc.status} ${acc.text}`);
  const key = async (role: string) => {
    const res = await call(base, 'POST', `/api/v1/admin/accounts/${acc.body.id}/keys`, { json: { role } });
    if (res.status !== 201) throw new Error(`key: ${res.status} ${res.text}`);
    return res.body.key as string;
  };
  return { id: acc.body.id, member: await key('member'), viewer: await key('viewer'), admin: await key('admin') };
}
