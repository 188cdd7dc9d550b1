/**
 * Manifest `runtime.services` (SPEC §4): helper processes inside the sandbox, reachable from tasks on
 * localhost (a sandbox has its own loopback even with no network).
 *
 *   start ─▶ running ─┬─ healthcheck ok ─▶ ready          (no healthcheck: ready once started)
 *                     └─ exit ─▶ restart? (always | on_failure with a non-zero exit) ─▶ start after a backoff
 *
 * - Readiness gates: `start` resolves when every service is ready, and throws (phase `services`) when one
 *   is not ready within its `ready_timeout_s` (default 30 s) or exits and will not restart.
 * - Restarts back off 0.5 s, 1 s, 2 s … up to 10 s; `stop` ends the supervision and kills every service.
 * - Output goes to the preparation log (for /status/details log_tail), capped by the caller.
 */
import type { NormalizedService } from '../../protocol/manifest.js';
import { RuntimeError } from '../port.js';
import type { Sandbox, SpawnedProcess } from './sandbox.js';

const DEFAULT_READY_TIMEOUT_S = 30;

interface Running {
  service: NormalizedService;
  proc: SpawnedProcess | null;
  exited: { code: number | null; signal: number | null } | null;
  restarts: number;
}

export class ServiceGroup {
  private readonly running: Running[] = [];
  private stopped = false;

  constructor(
    private readonly sandbox: Sandbox,
    private readonly services: readonly NormalizedService[],
    private readonly opts: { workdir: string; env: Record<string, string>; onLog(text: string): void },
  ) {}

  async start(): Promise<void> {
    for (const service of this.services) {
      const entry: Running = { service, proc: null, exited: null, restarts: 0 };
      this.running.push(entry);
      this.launch(entry);
    }
    await Promise.all(this.running.map((entry) => this.waitReady(entry)));
  }

  private cwd(service: NormalizedService): string {
    if (!service.cwd) return this.opts.workdir;
    return service.cwd.startsWith('/') ? service.cwd : `${this.opts.workdir.replace(/\/$/, '')}/${service.cwd}`;
  }

  private launch(entry: Running): void {
    if (this.stopped) return;
    const { service } = entry;
    entry.exited = null;
    entry.proc = this.sandbox.spawn(service.command, { cwd: this.cwd(service), env: { ...this.opts.env, ...service.env } }, {
      onStart: () => this.opts.onLog(`service ${service.name}: started\n`),
      onError: (errno) => this.ended(entry, { code: 127, signal: null }, `could not start (errno ${errno})`),
      onOutput: (chunk) => this.opts.onLog(`[${service.name}] ${chunk.toString('utf8')}`),
      onExit: (exit) => this.ended(entry, exit, exit.signal !== null ? `killed by signal ${exit.signal}` : `exited with ${exit.code}`),
      onLost: (reason) => { entry.exited = { code: null, signal: null }; this.opts.onLog(`service ${service.name}: ${reason}\n`); },
    });
  }

  private ended(entry: Running, exit: { code: number | null; signal: number | null }, how: string): void {
    entry.exited = exit;
    const { service } = entry;
    this.opts.onLog(`service ${service.name}: ${how}\n`);
    const restart = service.restart === 'always' || (service.restart === 'on_failure' && exit.code !== 0);
    if (!restart || this.stopped) return;
    const delay = Math.min(500 * 2 ** entry.restarts, 10_000);
    entry.restarts += 1;
    setTimeout(() => this.launch(entry), delay).unref();
  }

  private async waitReady(entry: Running): Promise<void> {
    const { service } = entry;
    const deadline = Date.now() + (service.ready_timeout_s ?? DEFAULT_READY_TIMEOUT_S) * 1000;
    let lastCheck = '';
    for (;;) {
      if (this.stopped) throw new RuntimeError('services_stopped', 'the sandbox was stopped while services started', 'services');
      const gaveUp = entry.exited && !(service.restart === 'always' || (service.restart === 'on_failure' && entry.exited.code !== 0));
      if (gaveUp) {
        throw new RuntimeError('service_failed', `service "${service.name}" exited (code ${entry.exited!.code ?? 'none'}) before it was ready and its restart policy is "${service.restart}"; see log_tail.`, 'services');
      }
      if (!entry.exited && entry.proc) {
        if (!service.healthcheck) return;
        const check = await this.sandbox.exec(service.healthcheck.command, { cwd: this.cwd(service), env: { ...this.opts.env, ...service.env }, timeoutMs: 10_000, keep: 1024 });
        if (check.code === 0) {
          this.opts.onLog(`service ${service.name}: healthy\n`);
          return;
        }
        lastCheck = check.errno !== null ? `the healthcheck could not start (errno ${check.errno})` : `the healthcheck exited ${check.code ?? 'by a signal'}: ${check.output.trim().slice(-300)}`;
      }
      if (Date.now() > deadline) {
        throw new RuntimeError('service_not_ready', `service "${service.name}" was not ready within ${service.ready_timeout_s ?? DEFAULT_READY_TIMEOUT_S} s${lastCheck ? ` (${lastCheck})` : ''}; raise ready_timeout_s or fix the service.`, 'services');
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** Ends supervision and kills every service's process group. */
  stop(): void {
    this.stopped = true;
    for (const entry of this.running) if (!entry.exited) entry.proc?.kill(9);
  }
}
