/**
 * Secrets never reach logs or diagnostics (SPEC §5 log_tail): bearer tokens and API keys by shape,
 * credentials in URLs, `password=`-style pairs, and the values of the task's declared env (job and
 * manifest env may hold secrets) are replaced before any text leaves the worker.
 */
const PATTERNS: RegExp[] = [
  /\b(?:flk|wkr)_[A-Za-z0-9_-]{16,}/g,
  /\bBearer\s+[A-Za-z0-9._~+/=-]{8,}/gi,
  /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/:@]+:[^\s/@]+@/gi,
  /\b((?:password|passwd|secret|token|api[_-]?key)\s*[=:]\s*)[^\s"',;]+/gi,
];

export function redactLog(text: string, env: Record<string, string> = {}): string {
  let out = text;
  out = out.replace(PATTERNS[0]!, '[redacted]');
  out = out.replace(PATTERNS[1]!, 'Bearer [redacted]');
  out = out.replace(PATTERNS[2]!, '$1[redacted]@');
  out = out.replace(PATTERNS[3]!, '$1[redacted]');
  for (const value of Object.values(env)) {
    if (value.length >= 6) out = out.split(value).join('[redacted]');
  }
  return out;
}
