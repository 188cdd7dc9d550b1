/**
 * What an attempt produced (SPEC §7): its result, how much to trust it, and whether it succeeded; and the
 * latest progress line. Pure: the worker reads the files and hands their text here.
 *
 * Invariants:
 * - Result sources, first that applies:
 *     result file over 10 MiB          → null, quality 0, error `result_too_large`; the attempt fails
 *     result file holding a JSON value → that value, quality 1.0 (`null` written on purpose counts)
 *     last stdout line that parses as a JSON OBJECT → that object, quality 0.5, warning `result_from_stdout`
 *     nothing                          → null, quality 0, warning `no_result`
 *   A result file that is present but not valid JSON adds `result_file_invalid` and falls through to stdout;
 *   an empty (or whitespace-only) file counts as absent, because runtimes may create it before the task runs.
 * - Success is exit code 0; a result is NOT required. SPEC's "exit code 0 with a result is success" names the
 *   normal case; requiring a result would fail (and retry) tasks whose work is a side effect (a KV write, an
 *   upload), and re-running side effects is worse than a visible `no_result` warning with quality 0.
 *   A non-zero exit fails the attempt even when a result was found (it is still reported, to help debug).
 * - An exit code of null (killed by a signal, timed out, cancelled) fails the attempt without an `error`
 *   here: only the caller knows which of those happened and names it.
 * - A value nested deeper than MAX_JSON_DEPTH levels counts as one that does not parse (a result file
 *   holding one is `result_file_invalid`): storing it would overflow the stack (core/json-depth.ts).
 * - Only stdout lines that start with "{" are parsed, from the last line backwards, so a long log costs one
 *   JSON.parse per candidate line at most.
 */
import { AppError } from './errors.js';
import { tooDeepAt } from './json-depth.js';

export const MAX_RESULT_BYTES = 10 * 1024 * 1024;

export const RESULT_WARNINGS = ['result_from_stdout', 'no_result', 'result_file_invalid'] as const;
export type ResultWarning = (typeof RESULT_WARNINGS)[number];

/** Attempt error codes decided here (task.error.code and attempts[].error.code). */
export const NONZERO_EXIT = 'nonzero_exit';

export interface ResultInput {
  resultFileText: string | null;
  resultFileBytes: number;
  stdoutTail: string;
  exitCode: number | null;
}

export interface ExtractedResult {
  result: unknown;
  result_quality: number;
  result_warnings: ResultWarning[];
  success: boolean;
  error?: { code: string; message: string };
}

const mib = (bytes: number): string => `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Calls `visit` on the lines of `text` from the last to the first until it returns non-undefined. */
function fromLastLine<T>(text: string, visit: (line: string) => T | undefined): T | undefined {
  let end = text.length;
  while (end > 0) {
    const start = text.lastIndexOf('\n', end - 1) + 1;
    const found = visit(text.slice(start, end).trim());
    if (found !== undefined) return found;
    end = start - 1;
  }
  return undefined;
}

/** The JSON value, or undefined when the text does not parse or nests too deep to store (json-depth.ts). */
function tryParse(text: string): { value: unknown } | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  return tooDeepAt(value) === null ? { value } : undefined;
}

/** The last stdout line that is a JSON object, or undefined. */
export function lastJsonObjectLine(stdout: string): Record<string, unknown> | undefined {
  return fromLastLine(stdout, (line) => {
    if (!line.startsWith('{') || !line.endsWith('}')) return undefined;
    const parsed = tryParse(line);
    return parsed && isObject(parsed.value) ? parsed.value : undefined;
  });
}

export function extractResult(input: ResultInput): ExtractedResult {
  const exitError = input.exitCode !== null && input.exitCode !== 0
    ? { code: NONZERO_EXIT, message: `runner_command exited with code ${input.exitCode}; see the task's output for why.` }
    : undefined;
  const ended = (result: unknown, quality: number, warnings: ResultWarning[]): ExtractedResult => {
    const out: ExtractedResult = { result, result_quality: quality, result_warnings: warnings, success: input.exitCode === 0 };
    if (exitError) out.error = exitError;
    return out;
  };
  if (input.resultFileBytes > MAX_RESULT_BYTES) {
    const error = new AppError('result_too_large', { size: mib(input.resultFileBytes), limit: mib(MAX_RESULT_BYTES) });
    return { result: null, result_quality: 0, result_warnings: [], success: false, error: { code: error.code, message: error.message } };
  }
  const warnings: ResultWarning[] = [];
  const fileText = input.resultFileText?.replace(/^\uFEFF/, '') ?? '';
  if (fileText.trim() !== '') {
    const parsed = tryParse(fileText);
    if (parsed) return ended(parsed.value, 1, warnings);
    warnings.push('result_file_invalid');
  }
  const line = lastJsonObjectLine(input.stdoutTail);
  if (line !== undefined) return ended(line, 0.5, [...warnings, 'result_from_stdout']);
  return ended(null, 0, [...warnings, 'no_result']);
}

export interface Progress { progress: number; message?: string }

/**
 * The last valid progress line of the progress file: a JSON object with a finite number `progress`,
 * clamped to 0..1, and an optional string `message` (a non-string message is dropped, the line kept).
 * Lines that are not valid are skipped, so a half-written last line falls back to the one before it.
 */
export function parseProgressLines(text: string): Progress | null {
  const found = fromLastLine(text, (line): Progress | undefined => {
    if (!line.startsWith('{')) return undefined;
    const parsed = tryParse(line);
    if (!parsed || !isObject(parsed.value)) return undefined;
    const { progress, message } = parsed.value;
    if (typeof progress !== 'number' || !Number.isFinite(progress)) return undefined;
    const out: Progress = { progress: Math.min(1, Math.max(0, progress)) };
    if (typeof message === 'string') out.message = message;
    return out;
  });
  return found ?? null;
}
