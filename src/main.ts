/** The `computalot` command: `serve` runs the server (`npm start`). Other commands arrive with workers. */
import { Command } from 'commander';
import { loadConfig } from './config.js';
import { startServer } from './server.js';
import { version } from './version.js';

const program = new Command().name('computalot').version(version).description('Self-hosted Computalot');

program.command('serve').description('serve the API with embedded SQLite (or DATABASE_URL)').action(async () => {
  let server;
  try {
    server = await startServer(loadConfig());
  } catch (err) {
    process.stderr.write(`computalot: cannot start: ${(err as Error).message}\n`);
    process.exit(1);
  }
  let stopping = false;
  const shutdown = (signal: string) => {
    // A process group gets the signal more than once (npm, tsx and node each pass it on): act on the first.
    if (stopping) {
      if (signal === 'SIGINT') process.exit(130);
      return;
    }
    stopping = true;
    server.deps.log.info({ signal }, 'shutting down: finishing requests');
    const force = setTimeout(() => process.exit(1), 30_000);
    force.unref();
    server.stop().then(() => process.exit(0), (err) => {
      process.stderr.write(`computalot: shutdown failed: ${(err as Error).message}\n`);
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
});

await program.parseAsync(process.argv);
