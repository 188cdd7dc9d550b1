/**
 * Parses `computalot.project.json` into the normalised manifest (SPEC §4).
 *
 * Invariants:
 * - No manifest → `{version 1, runtime {kind oci, sandbox gvisor, workdir: remote_dir or /workspace}}` with
 *   every other default below and `entrypoint: null` (each job must then name its runner_command).
 * - Any problem → one `invalid_manifest` (422) listing every problem with its RFC 6901 JSON path: a syntax
 *   error at "" (with line and column), then schema problems, then cross-field rules (manifest-rules.ts).
 * - Unknown keys never fail a push; each becomes one warning sentence naming its JSON path.
 * - Defaults filled in (the normalised shape, protocol/manifest.ts):
 *     build        {dockerfile "Dockerfile", context ".", target null, args {}}; dockerfile and context are
 *                  relative to the tarball root (like `docker build -f`), normalised without `./`
 *     runtime      reuse "sandbox", init.commands [] (each: cwd null, env {}), services [] (each: scope
 *                  "project", restart "never", cwd null, env {}, ready_timeout_s null, healthcheck null)
 *     entrypoint   null when absent (with a manifest too: jobs then name runner_command)
 *     validation   {executables [], files [], commands []}
 *     data_sources [] (each: artifact or url, the other null; sha256 lowercased), cache_mounts [], env {},
 *     resources    {} (only the keys given: cpu, memory_mb, pids)
 *   `cwd` of init commands and services may be absolute or relative to runtime.workdir; it is kept as given.
 * - Container paths in the result have no trailing `/`.
 * - Pure: no I/O.
 */
import type { NormalizedManifest } from '../protocol/manifest.js';
import { AppError, type Problem } from './errors.js';
import { isObject, jsonSyntaxProblem, schemaProblems, unknownKeyWarnings, type Json } from './manifest-problems.js';
import { normalizeContainerPath, ruleProblems } from './manifest-rules.js';
import { normalizeEntryPath } from './tar-paths.js';

export const MANIFEST_FILE = 'computalot.project.json';
/** The intake refuses a larger manifest before reading it whole. */
export const MAX_MANIFEST_BYTES = 1024 * 1024;

export interface ParseManifestOptions {
  remoteDir: string | null;
  allowRunc: boolean;
}

export interface ParsedManifest {
  manifest: NormalizedManifest;
  warnings: string[];
}

export function defaultManifest(remoteDir: string | null): NormalizedManifest {
  return normalize({ version: 1, runtime: { kind: 'oci', sandbox: 'gvisor', workdir: remoteDir ?? '/workspace' } });
}

export function invalidManifest(problems: Problem[]): AppError {
  const first = problems[0]!;
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more problem(s))` : '';
  const summary = `${first.path === '' ? 'the document' : first.path} ${first.message}${more}`;
  return new AppError('invalid_manifest', { summary }, { problems });
}

export function parseManifest(text: string | null, opts: ParseManifestOptions): ParsedManifest {
  if (text === null) return { manifest: defaultManifest(opts.remoteDir), warnings: [] };
  const body = text.replace(/^\uFEFF/, '');
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch (error) {
    throw invalidManifest([jsonSyntaxProblem(body, error as Error)]);
  }
  if (!isObject(value)) {
    throw invalidManifest([{ path: '', message: 'must be a JSON object, such as {"version": 1, "runtime": {...}}' }]);
  }
  const problems = [...schemaProblems(value), ...ruleProblems(value, { allowRunc: opts.allowRunc })];
  if (problems.length > 0) throw invalidManifest(problems);
  return { manifest: normalize(value), warnings: unknownKeyWarnings(value) };
}

const obj = (value: unknown): Json => (isObject(value) ? value : {});
const arr = (value: unknown): Json[] => (Array.isArray(value) ? value.filter(isObject) : []);
const strings = (value: unknown): string[] => (Array.isArray(value) ? value.map(String) : []);
const map = (value: unknown): Record<string, string> => ({ ...(obj(value) as Record<string, string>) });
const orNull = <T>(value: unknown): T | null => (value === undefined ? null : (value as T));
const containerPath = (value: unknown): string => normalizeContainerPath(String(value)) ?? String(value);

/** Fills defaults into a manifest that passed validation (or the built-in default). */
function normalize(input: Json): NormalizedManifest {
  const runtime = obj(input.runtime);
  const build = obj(input.build);
  const validation = obj(input.validation);
  const resources = obj(input.resources);
  const context = normalizeEntryPath(typeof build.context === 'string' ? build.context : '.');
  return {
    version: 1,
    runtime: {
      kind: 'oci',
      sandbox: runtime.sandbox === 'runc' ? 'runc' : 'gvisor',
      workdir: containerPath(runtime.workdir),
      reuse: runtime.reuse === 'none' ? 'none' : 'sandbox',
      init: {
        commands: arr(obj(runtime.init).commands).map((command) => ({
          label: String(command.label),
          command: strings(command.command),
          cwd: orNull<string>(command.cwd),
          env: map(command.env),
        })),
      },
      services: arr(runtime.services).map((service) => ({
        name: String(service.name),
        command: strings(service.command),
        scope: service.scope === 'task' ? 'task' : 'project',
        restart: service.restart === 'always' || service.restart === 'on_failure' ? service.restart : 'never',
        cwd: orNull<string>(service.cwd),
        env: map(service.env),
        ready_timeout_s: orNull<number>(service.ready_timeout_s),
        healthcheck: isObject(service.healthcheck) ? { command: strings(service.healthcheck.command) } : null,
      })),
    },
    entrypoint: isObject(input.entrypoint) ? { command: strings(input.entrypoint.command) } : null,
    build: {
      dockerfile: normalizeEntryPath(typeof build.dockerfile === 'string' ? build.dockerfile : 'Dockerfile'),
      context: context === '' ? '.' : context,
      target: orNull<string>(build.target),
      args: map(build.args),
    },
    validation: {
      executables: strings(validation.executables),
      files: strings(validation.files),
      commands: arr(validation.commands).map((check) => ({ label: String(check.label), command: strings(check.command) })),
    },
    data_sources: arr(input.data_sources).map((source) => ({
      name: String(source.name),
      artifact: orNull<string>(source.artifact),
      url: orNull<string>(source.url),
      sha256: String(source.sha256).toLowerCase(),
      mount: containerPath(source.mount),
    })),
    cache_mounts: arr(input.cache_mounts).map((cache) => ({ name: String(cache.name), path: containerPath(cache.path) })),
    env: map(input.env),
    resources: {
      ...(typeof resources.cpu === 'number' ? { cpu: resources.cpu } : {}),
      ...(typeof resources.memory_mb === 'number' ? { memory_mb: resources.memory_mb } : {}),
      ...(typeof resources.pids === 'number' ? { pids: resources.pids } : {}),
    },
  };
}
