/**
 * What a user would put in front of BullMQ to take jobs over the network, for the "same work" rows of the
 * job benchmarks: POST / with a JSON body → queue.add; POST /bulk with {"jobs": [...]} → queue.addBulk.
 * Plain node:http, no auth, no validation (kinder to the peer than what computalot does per request).
 * Run as its own process, like computalot's server: `node --import tsx bench/bull-http.ts <redis port> <queue>`.
 */
import { createServer } from 'node:http';
import { Queue } from 'bullmq';

const [redisPort, name] = process.argv.slice(2);
const queue = new Queue(name!, { connection: { host: '127.0.0.1', port: Number(redisPort) } });

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    void (async () => {
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString() || '{}');
        const answer = req.url === '/bulk'
          ? { ids: (await queue.addBulk((body.jobs as unknown[]).map((data) => ({ name: 't', data })))).map((j) => j.id) }
          : { id: (await queue.add('t', body)).id };
        res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
      } catch (error) {
        res.writeHead(400, { 'content-type': 'text/plain' }).end(String(error));
      }
    })();
  });
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`listening on http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}\n`);
});
process.on('SIGTERM', () => {
  server.close();
  void queue.close().finally(() => process.exit(0));
});
