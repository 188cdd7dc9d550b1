/**
 * Building a revision's image from its Dockerfile (manifest `build`: dockerfile, context, target, args).
 *
 * - One image per (project, content hash): `localhost/computalot/<project id>:<first 16 hex of the hash>`;
 *   `invalidate` finds every image of a project by that repository name. (Not by a `--label`: podman adds a
 *   LABEL step, and its commit, to every build, ~40 ms of each cold start, measured.)
 * - podman's layer cache is kept between builds (an edit to script.py reuses the `RUN pip install` layer);
 *   after `invalidate`, `noCache` rebuilds every layer.
 * - `RUN` steps run under runc, not gVisor (buildah with this runsc fails to tear its containers down,
 *   measured here), with `--network=none` unless the operator allows the network for builds
 *   (COMPUTALOT_BUILD_NETWORK): a build is user code too.
 * - Progress: podman prints `STEP 3/7: RUN …` per step; each becomes a phase update ("build step 3/7"),
 *   and a failure names the step that failed.
 */
import { randomBytes } from 'node:crypto';
import { rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, normalize } from 'node:path';
import type { NormalizedManifest } from '../../protocol/manifest.js';
import type { PhaseInfo } from '../port.js';
import { RuntimeError } from '../port.js';
import { DEFAULT_PASS_ENV, hostEnv } from '../task-env.js';
import { podman, podmanStreaming, RUNC_ULIMITS, runCommand, type EngineOptions } from './podman.js';

export function imageRepository(projectId: string): string {
  return `localhost/computalot/${projectId.toLowerCase().replace(/[^a-z0-9_.-]/g, '-')}`;
}

export function imageName(projectId: string, contentHash: string): string {
  return `${imageRepository(projectId)}:${contentHash.replace(/^sha256:/, '').slice(0, 16)}`;
}

const STEP = /^STEP (\d+)\/(\d+): (.*)$/;

export interface BuildInput {
  engine: EngineOptions;
  projectId: string;
  contentHash: string;
  /** The unpacked revision. */
  root: string;
  build: NormalizedManifest['build'];
  noCache: boolean;
  network: string;
  /** The build's time limit (its `signal` aborts then), for the error message. */
  timeoutS: number;
  onStep(info: PhaseInfo): void;
  onLog(chunk: string): void;
  signal: AbortSignal;
}

export async function imageExists(engine: EngineOptions, image: string): Promise<boolean> {
  return (await podman(engine, ['image', 'exists', image])).code === 0;
}

/** Builds the image, or throws a RuntimeError (phase `build`) naming the step that failed. */
export async function buildImage(input: BuildInput): Promise<string> {
  const image = imageName(input.projectId, input.contentHash);
  const context = normalize(join(input.root, input.build.context));
  const dockerfile = normalize(join(input.root, input.build.dockerfile));
  if (!(await stat(dockerfile).then((s) => s.isFile(), () => false))) {
    throw new RuntimeError('dockerfile_missing', `The revision has no ${input.build.dockerfile}; add one at the tarball root (or set build.dockerfile) and push again.`, 'build');
  }
  // A runc state folder of this build's own: when the build is stopped (time limit, shutdown), the RUN
  // step's container would outlive podman (seen here: `RUN sleep …` kept running), so it is killed by
  // listing this folder, which holds only this build's containers.
  const runcRoot = join(tmpdir(), `computalot-runc-${randomBytes(6).toString('hex')}`);
  const args = ['build', '--runtime', input.engine.runc, '--runtime-flag', `root=${runcRoot}`, ...RUNC_ULIMITS, `--network=${input.network}`,
    '-f', dockerfile, '-t', image];
  if (input.noCache) args.push('--no-cache');
  if (input.build.target) args.push('--target', input.build.target);
  // `--build-arg NAME` takes the value from podman's environment: values stay out of the host's process
  // list (`ps`), where any local user could read them.
  for (const name of Object.keys(input.build.args)) args.push('--build-arg', name);
  args.push(context);
  let lastStep = '';
  let partial = '';
  // podman gets the host's allow-listed variables (and its own CONTAINERS_*/XDG_* settings), never the
  // server's secrets, plus the build args it reads by name.
  const env = { ...hostEnv([...DEFAULT_PASS_ENV, 'CONTAINERS_*', 'XDG_*', 'REGISTRY_AUTH_FILE']), ...input.build.args };
  const code = await podmanStreaming(input.engine, args, env, (chunk) => {
    partial += chunk;
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    const shown = lines.filter((line) => ownLine(line, image));
    if (shown.length > 0) input.onLog(`${shown.join('\n')}\n`);
    for (const line of lines) {
      const m = STEP.exec(line);
      if (!m) continue;
      lastStep = line;
      input.onStep({ step: Number(m[1]), steps: Number(m[2]), message: m[3] });
    }
  }, input.signal);
  if (partial && ownLine(partial, image)) input.onLog(partial);
  await killBuildContainers(input.engine, runcRoot);
  // Checked whatever the exit code: podman exits 0 when it is stopped by SIGTERM mid-build (seen here).
  if (input.signal.aborted) {
    throw new RuntimeError('build_timeout', `podman build did not finish within ${input.timeoutS} s${lastStep ? ` (it was at ${lastStep})` : ''}; make the build faster or raise COMPUTALOT_BUILD_TIMEOUT_S.`, 'build');
  }
  if (code !== 0) {
    const where = lastStep ? ` at ${lastStep}` : '';
    throw new RuntimeError('build_failed', `podman build failed${where} (exit ${code ?? 'killed'}); see log_tail in /status/details, fix the Dockerfile and push again.`, 'build');
  }
  return image;
}

/**
 * False for podman's "Successfully tagged" lines that name another image: when a build ends on a cached
 * image that other projects' builds made too (same Dockerfile, same files), podman lists every tag the
 * image has, and those name other projects, maybe other accounts'. The log shows only this build's tag.
 */
function ownLine(line: string, image: string): boolean {
  return !line.startsWith('Successfully tagged ') || line.slice('Successfully tagged '.length).trim() === image;
}

/** SIGKILLs and deletes whatever containers are left in a build's runc state folder, then removes it. */
async function killBuildContainers(engine: EngineOptions, runcRoot: string): Promise<void> {
  const listed = await runCommand(engine.runc, ['--root', runcRoot, 'list', '-q'], { timeoutMs: 30_000 });
  for (const id of listed.stdout.split('\n').map((l) => l.trim()).filter(Boolean)) {
    await runCommand(engine.runc, ['--root', runcRoot, 'kill', '--all', id, 'KILL'], { timeoutMs: 30_000 });
    await runCommand(engine.runc, ['--root', runcRoot, 'delete', '--force', id], { timeoutMs: 30_000 });
  }
  await rm(runcRoot, { recursive: true, force: true });
}

/**
 * Removes every image of a project (invalidate); containers using one are removed first by the caller.
 * By name, not by image id: an image other projects' builds share (a cached build of the same files) also
 * carries their names, and `rmi -f` of the id would take it, and the sandboxes running it, from all of
 * them. `rmi` of a name only untags while other names remain, and deletes the image with its last one.
 * `--no-prune` (RMI_KEEPS_PARENTS): by default `rmi` also deletes the image's dangling parents, the
 * build's cached intermediate images, which a build running meanwhile may be reusing: seen as a
 * concurrent build failing at its next step (`COPY . .`, exit 125) while another project was invalidated.
 */
/** `podman rmi` that leaves the build cache (intermediate images) to builds that may be using it. */
export const RMI_KEEPS_PARENTS = ['--no-prune'];

export async function removeProjectImages(engine: EngineOptions, projectId: string): Promise<void> {
  const repository = imageRepository(projectId);
  // `podman images` fails while an image it is listing is being removed (another worker, another
  // project's invalidate): tried again, a few times.
  const list = ['images', '--format', '{{.Repository}}:{{.Tag}}', '--filter', `reference=${repository}`];
  let listed = await podman(engine, list);
  for (let attempt = 1; listed.code !== 0 && attempt < 5; attempt += 1) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    listed = await podman(engine, list);
  }
  // The filter picks images, and podman then lists every name each one has: keep this project's.
  const names = [...new Set(listed.stdout.split('\n').map((s) => s.trim()).filter((s) => s.startsWith(`${repository}:`)))];
  if (names.length > 0) await podman(engine, ['rmi', ...RMI_KEEPS_PARENTS, '-f', '--ignore', ...names]);
}
