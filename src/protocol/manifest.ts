/**
 * `computalot.project.json` (SPEC §4): the schema of what users write, and of the normalised manifest the
 * server answers with (push response `manifest`) and hands to workers.
 *
 * Invariants:
 * - `ManifestSchema` accepts unknown keys at every level (SPEC: "Unknown keys are accepted and listed in
 *   manifest_warnings"); core/manifest.ts walks this same schema to find them, so adding a field here is
 *   the only change needed to stop warning about it.
 * - Field names are public and match Computalot's letter for letter; `reuse`, `env`, `resources` are ours.
 * - Checks that need more than one field (unique names, exactly one of artifact|url, runc allowed, no `..`
 *   in paths) live in core/manifest.ts, which reports them with the same JSON paths.
 * - `NormalizedManifestSchema` has every default filled in: optional scalars are `null`, lists `[]`, maps
 *   `{}`; only `resources` keeps absent keys absent (no default is better than a made-up one).
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';

const NonEmpty = Type.String({ minLength: 1 });
const Command = Type.Array(Type.String(), { minItems: 1, description: 'a non-empty array of strings' });
const ContainerPath = Type.String({
  pattern: '^/',
  description: 'an absolute path in the container, such as /workspace',
});
const ProjectPath = Type.String({
  minLength: 1,
  description: 'a relative path inside the tarball, such as "Dockerfile"',
});
const Name = Type.String({
  pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$',
  description: 'a name of 1-63 letters, digits, ".", "_" or "-" that starts with a letter or digit',
});
const EnvMap = Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }), Type.String(), {
  additionalProperties: false,
  description: 'names are letters, digits and "_", not starting with a digit',
});
const Sha256 = Type.String({ pattern: '^[0-9a-fA-F]{64}$', description: 'a sha256 of 64 hex digits' });

export const InitCommandSchema = Type.Object({
  label: NonEmpty,
  command: Command,
  cwd: Type.Optional(NonEmpty),
  env: Type.Optional(EnvMap),
});

export const ServiceSchema = Type.Object({
  name: Name,
  command: Command,
  scope: Type.Optional(Type.Union([Type.Literal('project'), Type.Literal('task')])),
  restart: Type.Optional(Type.Union([Type.Literal('never'), Type.Literal('on_failure'), Type.Literal('always')])),
  cwd: Type.Optional(NonEmpty),
  env: Type.Optional(EnvMap),
  ready_timeout_s: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 86_400 })),
  healthcheck: Type.Optional(Type.Object({ command: Command })),
});

const CheckCommandSchema = Type.Object({ label: NonEmpty, command: Command });

export const DataSourceSchema = Type.Object({
  name: Name,
  artifact: Type.Optional(NonEmpty),
  url: Type.Optional(Type.String({ pattern: '^https?://', description: 'an http:// or https:// URL' })),
  sha256: Sha256,
  mount: ContainerPath,
});

export const CacheMountSchema = Type.Object({ name: Name, path: ContainerPath });

export const ResourcesSchema = Type.Object({
  cpu: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
  memory_mb: Type.Optional(Type.Integer({ minimum: 1 })),
  pids: Type.Optional(Type.Integer({ minimum: 1 })),
});

export const ManifestSchema = Type.Object({
  version: Type.Literal(1),
  runtime: Type.Object({
    kind: Type.Literal('oci'),
    sandbox: Type.Union([Type.Literal('gvisor'), Type.Literal('runc')]),
    workdir: ContainerPath,
    reuse: Type.Optional(Type.Union([Type.Literal('sandbox'), Type.Literal('none')])),
    init: Type.Optional(Type.Object({ commands: Type.Optional(Type.Array(InitCommandSchema)) })),
    services: Type.Optional(Type.Array(ServiceSchema)),
  }),
  entrypoint: Type.Optional(Type.Object({ command: Command })),
  build: Type.Optional(
    Type.Object({
      dockerfile: Type.Optional(ProjectPath),
      context: Type.Optional(ProjectPath),
      target: Type.Optional(NonEmpty),
      args: Type.Optional(Type.Record(Type.String(), Type.String())),
    }),
  ),
  validation: Type.Optional(
    Type.Object({
      executables: Type.Optional(Type.Array(NonEmpty)),
      files: Type.Optional(Type.Array(NonEmpty)),
      commands: Type.Optional(Type.Array(CheckCommandSchema)),
    }),
  ),
  data_sources: Type.Optional(Type.Array(DataSourceSchema)),
  cache_mounts: Type.Optional(Type.Array(CacheMountSchema)),
  env: Type.Optional(EnvMap),
  resources: Type.Optional(ResourcesSchema),
});

/** What a user may write (before defaults). */
export type Manifest = Static<typeof ManifestSchema>;

const StringMap = Type.Record(Type.String(), Type.String());
const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

export const NormalizedManifestSchema = Type.Object({
  version: Type.Literal(1),
  runtime: Type.Object({
    kind: Type.Literal('oci'),
    sandbox: Type.Union([Type.Literal('gvisor'), Type.Literal('runc')]),
    workdir: Type.String(),
    reuse: Type.Union([Type.Literal('sandbox'), Type.Literal('none')]),
    init: Type.Object({
      commands: Type.Array(
        Type.Object({ label: Type.String(), command: Type.Array(Type.String()), cwd: Nullable(Type.String()), env: StringMap }),
      ),
    }),
    services: Type.Array(
      Type.Object({
        name: Type.String(),
        command: Type.Array(Type.String()),
        scope: Type.Union([Type.Literal('project'), Type.Literal('task')]),
        restart: Type.Union([Type.Literal('never'), Type.Literal('on_failure'), Type.Literal('always')]),
        cwd: Nullable(Type.String()),
        env: StringMap,
        ready_timeout_s: Nullable(Type.Number()),
        healthcheck: Nullable(Type.Object({ command: Type.Array(Type.String()) })),
      }),
    ),
  }),
  entrypoint: Nullable(Type.Object({ command: Type.Array(Type.String()) })),
  build: Type.Object({
    dockerfile: Type.String(),
    context: Type.String(),
    target: Nullable(Type.String()),
    args: StringMap,
  }),
  validation: Type.Object({
    executables: Type.Array(Type.String()),
    files: Type.Array(Type.String()),
    commands: Type.Array(Type.Object({ label: Type.String(), command: Type.Array(Type.String()) })),
  }),
  data_sources: Type.Array(
    Type.Object({
      name: Type.String(),
      artifact: Nullable(Type.String()),
      url: Nullable(Type.String()),
      sha256: Type.String(),
      mount: Type.String(),
    }),
  ),
  cache_mounts: Type.Array(Type.Object({ name: Type.String(), path: Type.String() })),
  env: StringMap,
  resources: ResourcesSchema,
});

/** The manifest with every default filled in (push response `manifest`, what workers act on). */
export type NormalizedManifest = Static<typeof NormalizedManifestSchema>;
export type NormalizedService = NormalizedManifest['runtime']['services'][number];
