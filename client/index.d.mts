// Type declarations for the ES module entry (index.mjs): the same as index.d.ts.
export * from './index.js';
export { default } from './index.js';
