/** Prometheus metrics (prom-client's default registry), named computalot_*. */
import client from 'prom-client';

export const registry = client.register;
client.collectDefaultMetrics({ register: registry, prefix: 'computalot_' });

export const httpRequests = new client.Counter({
  name: 'computalot_http_requests_total', help: 'HTTP requests answered', labelNames: ['method', 'route', 'status'],
});
export const httpDuration = new client.Histogram({
  name: 'computalot_http_request_duration_seconds', help: 'HTTP request duration', labelNames: ['method', 'route'],
  buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
});
export const pushedBytes = new client.Counter({ name: 'computalot_push_bytes_total', help: 'Tarball bytes taken in' });
export const sseClients = new client.Gauge({ name: 'computalot_sse_clients', help: 'Open SSE streams' });
