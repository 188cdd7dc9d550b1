/** Times are RFC 3339 UTC strings with milliseconds; they sort as text, so the store keeps them as text. */
export function nowIso(now: number = Date.now()): string {
  return new Date(now).toISOString();
}

export function addSeconds(iso: string, seconds: number): string {
  return new Date(Date.parse(iso) + seconds * 1000).toISOString();
}
