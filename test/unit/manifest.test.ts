/**
 * SPEC §4: the smallest public manifest, defaults with and without a manifest, every kind of problem with
 * its RFC 6901 JSON path, unknown keys as warnings, and runc allowed or refused.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isAppError, type Problem } from '../../src/core/errors.js';
import { parseManifest } from '../../src/core/manifest.js';

const OPTS = { remoteDir: null, allowRunc: false };
const SMALLEST = { version: 1, runtime: { kind: 'oci', sandbox: 'gvisor', workdir: '/workspace' }, entrypoint: { command: ['python', 'job.py'] } };
const parse = (value: unknown, opts = OPTS) => parseManifest(typeof value === 'string' ? value : JSON.stringify(value), opts);
const withRuntime = (extra: Record<string, unknown>, top: Record<string, unknown> = {}) =>
  ({ ...SMALLEST, ...top, runtime: { ...SMALLEST.runtime, ...extra } });

function problemsOf(value: unknown, opts = OPTS): Problem[] {
  try {
    parse(value, opts);
  } catch (error) {
    assert.ok(isAppError(error));
    assert.equal(error.code, 'invalid_manifest');
    assert.equal(error.status, 422);
    return error.details.problems as Problem[];
  }
  return assert.fail('the manifest was accepted');
}

/** Asserts that a problem at exactly `path` exists and its message matches. */
function expectProblem(value: unknown, path: string, message: RegExp): void {
  const problems = problemsOf(value);
  const found = problems.find((problem) => problem.path === path);
  assert.ok(found, `no problem at "${path}": ${JSON.stringify(problems)}`);
  assert.match(found.message, message);
}

const DEFAULTS = {
  version: 1,
  runtime: { kind: 'oci', sandbox: 'gvisor', workdir: '/workspace', reuse: 'sandbox', init: { commands: [] }, services: [] },
  entrypoint: null,
  build: { dockerfile: 'Dockerfile', context: '.', target: null, args: {} },
  validation: { executables: [], files: [], commands: [] },
  data_sources: [],
  cache_mounts: [],
  env: {},
  resources: {},
};

describe('defaults', () => {
  it('no manifest: version 1, oci, gvisor, workdir = remote_dir or /workspace, no entrypoint', () => {
    assert.deepEqual(parseManifest(null, OPTS), { manifest: DEFAULTS, warnings: [] });
    const { manifest } = parseManifest(null, { remoteDir: '/root/my-project', allowRunc: false });
    assert.equal(manifest.runtime.workdir, '/root/my-project');
  });

  it('the smallest public manifest is valid and gets every default', () => {
    assert.deepEqual(parse(SMALLEST), { manifest: { ...DEFAULTS, entrypoint: { command: ['python', 'job.py'] } }, warnings: [] });
  });

  it('fills defaults inside services, init commands and data sources, and normalises paths', () => {
    const { manifest } = parse({
      ...withRuntime({
        workdir: '/srv/app/',
        init: { commands: [{ label: 'deps', command: ['pip', 'install', '-r', 'req.txt'] }] },
        services: [{ name: 'redis', command: ['redis-server'], healthcheck: { command: ['redis-cli', 'ping'] } }],
      }),
      build: { dockerfile: './docker/Dockerfile', context: './', args: { PY: '3.11' } },
      data_sources: [{ name: 'weights', url: 'https://example.com/w.bin', sha256: 'AB'.repeat(32), mount: '/data/w/' }],
      cache_mounts: [{ name: 'pip', path: '/root/.cache/pip' }],
      env: { MODE: 'fast' },
      resources: { cpu: 2 },
    });
    assert.equal(manifest.runtime.workdir, '/srv/app');
    assert.deepEqual(manifest.runtime.init.commands, [{ label: 'deps', command: ['pip', 'install', '-r', 'req.txt'], cwd: null, env: {} }]);
    assert.deepEqual(manifest.runtime.services, [{
      name: 'redis', command: ['redis-server'], scope: 'project', restart: 'never', cwd: null, env: {},
      ready_timeout_s: null, healthcheck: { command: ['redis-cli', 'ping'] },
    }]);
    assert.deepEqual(manifest.build, { dockerfile: 'docker/Dockerfile', context: '.', target: null, args: { PY: '3.11' } });
    assert.deepEqual(manifest.data_sources, [{ name: 'weights', artifact: null, url: 'https://example.com/w.bin', sha256: 'ab'.repeat(32), mount: '/data/w' }]);
    assert.deepEqual(manifest.resources, { cpu: 2 });
  });

  it('accepts a UTF-8 byte order mark', () => {
    assert.equal(parse(`\uFEFF${JSON.stringify(SMALLEST)}`).manifest.version, 1);
  });
});

describe('problems, each with its JSON path', () => {
  it('not JSON: one problem at "" saying where it breaks', () => {
    const [problem] = problemsOf('{\n  "version": 1,\n  "runtime": }\n');
    assert.equal(problem!.path, '');
    assert.match(problem!.message, /line 3, column 14/);
    assert.match(problemsOf('{"version": 1')[0]!.message, /line 1, column 14/);
    assert.match(problemsOf('')[0]!.message, /line 1, column 1/);
  });

  it('not an object', () => {
    assert.deepEqual(problemsOf('[1, 2]').map((p) => p.path), ['']);
  });

  it('required fields and their values', () => {
    expectProblem({}, '/version', /required/);
    expectProblem({}, '/runtime', /required/);
    expectProblem({ ...SMALLEST, version: 2 }, '/version', /must be 1/);
    expectProblem({ ...SMALLEST, runtime: { sandbox: 'gvisor', workdir: '/w' } }, '/runtime/kind', /required/);
    expectProblem(withRuntime({ kind: 'docker' }), '/runtime/kind', /must be "oci"/);
    expectProblem(withRuntime({ sandbox: 'kata' }), '/runtime/sandbox', /one of "gvisor", "runc"/);
    expectProblem(withRuntime({ workdir: 'workspace' }), '/runtime/workdir', /absolute path/);
    expectProblem(withRuntime({ workdir: '/a/../etc' }), '/runtime/workdir', /\.\./);
    expectProblem(withRuntime({ reuse: 'always' }), '/runtime/reuse', /"sandbox", "none"/);
    expectProblem({ ...SMALLEST, entrypoint: { command: [] } }, '/entrypoint/command', /non-empty array/);
    expectProblem({ ...SMALLEST, entrypoint: { command: ['python', 3] } }, '/entrypoint/command/1', /string/);
    expectProblem({ ...SMALLEST, entrypoint: {} }, '/entrypoint/command', /required/);
  });

  it('services and init commands', () => {
    const service = { name: 'db', command: ['postgres'] };
    expectProblem(withRuntime({ services: [service, service] }), '/runtime/services/1/name', /repeats the name "db" of \/runtime\/services\/0/);
    expectProblem(withRuntime({ services: [{ ...service, scope: 'global' }] }), '/runtime/services/0/scope', /"project", "task"/);
    expectProblem(withRuntime({ services: [{ ...service, restart: 'sometimes' }] }), '/runtime/services/0/restart', /on_failure/);
    expectProblem(withRuntime({ services: [{ ...service, name: 'bad name' }] }), '/runtime/services/0/name', /name of 1-63/);
    expectProblem(withRuntime({ services: [{ ...service, ready_timeout_s: 0 }] }), '/runtime/services/0/ready_timeout_s', /greater than 0/);
    expectProblem(withRuntime({ init: { commands: [{ command: ['make'] }] } }), '/runtime/init/commands/0/label', /required/);
  });

  it('build paths stay inside the tarball', () => {
    expectProblem({ ...SMALLEST, build: { dockerfile: '/etc/Dockerfile' } }, '/build/dockerfile', /relative path/);
    expectProblem({ ...SMALLEST, build: { context: '../other' } }, '/build/context', /relative path/);
    expectProblem({ ...SMALLEST, build: { dockerfile: './' } }, '/build/dockerfile', /name a file/);
    expectProblem({ ...SMALLEST, build: { args: { PY: 3 } } }, '/build/args/PY', /string/);
  });

  it('data sources, cache mounts, env and resources', () => {
    const source = { name: 'w', artifact: 'art_01', sha256: 'a'.repeat(64), mount: '/data' };
    expectProblem({ ...SMALLEST, data_sources: [{ ...source, url: 'https://x' }] }, '/data_sources/0', /both "artifact" and "url"/);
    expectProblem({ ...SMALLEST, data_sources: [{ name: 'w', sha256: 'a'.repeat(64), mount: '/d' }] }, '/data_sources/0', /exactly one/);
    expectProblem({ ...SMALLEST, data_sources: [{ ...source, sha256: 'abc' }] }, '/data_sources/0/sha256', /64 hex/);
    expectProblem({ ...SMALLEST, data_sources: [{ ...source, mount: 'data' }] }, '/data_sources/0/mount', /absolute path/);
    expectProblem({ ...SMALLEST, data_sources: [{ ...source, mount: '/' }] }, '/data_sources/0/mount', /other than "\/"/);
    expectProblem({ ...SMALLEST, data_sources: [{ ...source, mount: '/workspace/' }] }, '/data_sources/0/mount', /workdir/);
    // A ":" or "," would add podman mount options (e.g. make a shared read-only source writable).
    expectProblem({ ...SMALLEST, data_sources: [{ ...source, mount: '/data:rw' }] }, '/data_sources/0/mount', /may not contain ":"/);
    expectProblem({ ...SMALLEST, cache_mounts: [{ name: 'c', path: '/cache,z' }] }, '/cache_mounts/0/path', /may not contain/);
    expectProblem({ ...SMALLEST, cache_mounts: [{ name: 'c', path: '/computalot/io' }] }, '/cache_mounts/0/path', /under \/computalot/);
    expectProblem({ ...SMALLEST, data_sources: [{ ...source, mount: '/proc/x' }] }, '/data_sources/0/mount', /under \/proc/);
    expectProblem({ ...SMALLEST, data_sources: [source, { ...source, mount: '/other' }] }, '/data_sources/1/name', /repeats/);
    expectProblem({ ...SMALLEST, data_sources: [source], cache_mounts: [{ name: 'c', path: '/data' }] }, '/cache_mounts/0/path', /already mounted by \/data_sources\/0\/mount/);
    expectProblem({ ...SMALLEST, cache_mounts: [{ name: 'c', path: '/a' }, { name: 'c', path: '/b' }] }, '/cache_mounts/1/name', /repeats/);
    expectProblem({ ...SMALLEST, env: { 'A/B': 'x' } }, '/env/A~1B', /not an allowed key/);
    expectProblem({ ...SMALLEST, env: { PORT: 8080 } }, '/env/PORT', /string/);
    expectProblem({ ...SMALLEST, resources: { cpu: -1 } }, '/resources/cpu', /greater than 0/);
    expectProblem({ ...SMALLEST, resources: { memory_mb: 1.5 } }, '/resources/memory_mb', /integer/);
  });

  it('lists every problem at once, one per path', () => {
    const problems = problemsOf({ version: 0, runtime: { kind: 'vm', workdir: 'rel' }, cache_mounts: 'nope' });
    assert.deepEqual(problems.map((p) => p.path).sort(), ['/cache_mounts', '/runtime/kind', '/runtime/sandbox', '/runtime/workdir', '/version']);
  });

  it('the message summarises the first problem and counts the others', () => {
    assert.throws(() => parse({}), { message: /computalot\.project\.json is invalid: \/version is required \(and 1 more problem\(s\)\)/ });
  });
});

describe('unknown keys and runc', () => {
  it('unknown keys at any level of known objects become warnings naming their JSON path', () => {
    const { warnings } = parse({
      ...withRuntime({ gpu: true, services: [{ name: 's', command: ['x'], ports: [80] }] }),
      build: { dockerfile: 'Dockerfile', 'cache/from': 'x' },
      env: { ANY_NAME: 'fine' },
      extra: 1,
    });
    assert.deepEqual(warnings.map((w) => /at (\S+) /.exec(w)?.[1]).sort(), ['/build/cache~1from', '/extra', '/runtime/gpu', '/runtime/services/0/ports']);
    for (const warning of warnings) assert.match(warning, /^Unknown key at \S+ is not used by this server and was ignored\.$/);
  });

  it('runc is refused unless the server allows it', () => {
    expectProblem(withRuntime({ sandbox: 'runc' }), '/runtime/sandbox', /does not allow.*COMPUTALOT_ALLOW_RUNC=1/);
    const { manifest } = parse(withRuntime({ sandbox: 'runc' }), { remoteDir: null, allowRunc: true });
    assert.equal(manifest.runtime.sandbox, 'runc');
  });
});
