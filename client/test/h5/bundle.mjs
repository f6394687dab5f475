// Bundles the client library with Taro's H5 runtime (@tarojs/taro-h5) the way
// a Taro H5 build does (esbuild instead of webpack, Taro's compile-time
// constants for the web platform), for the Taro H5 tests (happy-dom) and the
// browser test (Chromium). The bundle exports `Taro` and the client's
// `createAuth` / `AuthError`.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

const entry = fileURLToPath(new URL('./entry.mjs', import.meta.url));

/** What Taro's H5 build (its webpack/vite runner) defines for `taro build --type h5`. */
export const TARO_H5_DEFINE = {
  'process.env.NODE_ENV': '"production"',
  'process.env.TARO_ENV': '"h5"',
  'process.env.TARO_PLATFORM': '"web"',
  'process.env.FRAMEWORK': '"react"',
  'process.env.TARO_VERSION': '"4.2.1"',
  'process.env.SUPPORT_TARO_POLYFILL': '"disabled"',
  ENABLE_INNER_HTML: 'true',
  ENABLE_ADJACENT_HTML: 'true',
  ENABLE_SIZE_APIS: 'false',
  ENABLE_TEMPLATE_CONTENT: 'true',
  ENABLE_CLONE_NODE: 'true',
  ENABLE_CONTAINS: 'true',
  ENABLE_MUTATION_OBSERVER: 'false',
};

/**
 * Writes the bundle to `outfile`: `format` 'esm' (imported by a test) or
 * 'iife' (a <script> in a page; the exports on `globalName`).
 */
export async function bundleH5({ outfile, format = 'esm', globalName = 'WxEdgeH5' }) {
  await build({
    entryPoints: [entry],
    bundle: true,
    format,
    globalName: format === 'iife' ? globalName : undefined,
    platform: 'browser',
    target: 'es2019',
    define: TARO_H5_DEFINE,
    loader: { '.css': 'empty', '.scss': 'empty' },
    outfile,
    logLevel: 'error',
  });
  return outfile;
}
