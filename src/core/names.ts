/**
 * Name rules shared by routes and the store: project names (SPEC §2) and KV keys (SPEC §9).
 * Pure: returns a reason string when invalid, null when valid.
 */
export const PROJECT_NAME_PATTERN = '^[a-z0-9][a-z0-9._-]{0,62}$';
const projectName = new RegExp(PROJECT_NAME_PATTERN);

export function projectNameProblem(name: string): string | null {
  return projectName.test(name)
    ? null
    : 'project names are 1-63 characters of a-z, 0-9, ".", "_" and "-", starting with a letter or digit';
}

export const KV_KEY_MAX_BYTES = 512;

export function kvKeyProblem(key: string): string | null {
  const bytes = Buffer.byteLength(key, 'utf8');
  if (bytes === 0) return 'the key is empty';
  if (bytes > KV_KEY_MAX_BYTES) return `the key is ${bytes} bytes long, over ${KV_KEY_MAX_BYTES}`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(key)) return 'the key contains a control character';
  if (key.includes('\uFFFD')) return 'the key is not valid UTF-8';
  return null;
}
