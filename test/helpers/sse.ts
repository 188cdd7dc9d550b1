/** Reads a whole SSE response (one that ends by itself) into its events, for tests. */
export interface SseEvent { id: number; event: string; data: any }

export async function readStream(url: string, token: string, headers: Record<string, string> = {}): Promise<SseEvent[]> {
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}`, ...headers } });
  if (res.status !== 200) throw new Error(`stream: ${res.status} ${await res.text()}`);
  return parseSse(await res.text());
}

export function parseSse(text: string): SseEvent[] {
  const events: SseEvent[] = [];
  for (const block of text.split('\n\n')) {
    const fields: Record<string, string> = {};
    for (const line of block.split('\n')) {
      if (!line || line.startsWith(':')) continue;
      const i = line.indexOf(':');
      fields[line.slice(0, i)] = line.slice(i + 1).trimStart();
    }
    if (fields.event && fields.data !== undefined) events.push({ id: Number(fields.id), event: fields.event, data: JSON.parse(fields.data) });
  }
  return events;
}
