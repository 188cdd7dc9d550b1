/** node-postgres's own value mapping (what it sends for a JS value), used by pg-pipeline.ts. */
declare module 'pg/lib/utils.js' {
  const utils: { prepareValue(value: unknown): unknown };
  export default utils;
}
