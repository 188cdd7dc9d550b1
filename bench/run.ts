/** `npm run bench -- <name>`: runs one benchmark from bench/<name>.ts. */
const names = ['push', 'kv', 'dispatch', 'throughput', 'submit', 'cold', 'warm'] as const;
/** Benchmarks that live together in one module, picked by name. */
const modules: Record<string, string> = { dispatch: 'jobs', throughput: 'jobs', submit: 'jobs', cold: 'oci', warm: 'oci' };
const name = process.argv[2];
if (!name || !(names as readonly string[]).includes(name)) {
  process.stderr.write(`usage: npm run bench -- <${names.join('|')}>\n`);
  process.exit(2);
}
const mod = (await import(`./${modules[name] ?? name}.js`)) as { main(args: string[]): Promise<void> };
await mod.main(modules[name] ? [name, ...process.argv.slice(3)] : process.argv.slice(3));
process.exit(0);
