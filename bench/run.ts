/** `npm run bench -- <name>`: runs one benchmark from bench/<name>.ts. */
const names = ['push', 'kv'] as const;
const name = process.argv[2];
if (!name || !(names as readonly string[]).includes(name)) {
  process.stderr.write(`usage: npm run bench -- <${names.join('|')}>\n`);
  process.exit(2);
}
const mod = (await import(`./${name}.js`)) as { main(args: string[]): Promise<void> };
await mod.main(process.argv.slice(3));
