// The workers the benchmark runs, each in its own Miniflare instance (one
// workerd each, on its own free port on 127.0.0.1), all in front of the
// same nginx origin and WeChat simulator.
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Miniflare } from 'miniflare'
import { buildDir, TEST_APPID } from '../tests/support/stack.mjs'
import { atCleanup, withTimeout } from './procs.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
export const root = path.resolve(here, '..')

// The Rust worker's configurations under test. Adding a mode is one line:
// `vars` are set on top of the base bindings below; `identity` decides
// whether IDENTITY_KEY is set. The first entry is the default configuration
// and is the one whose /auth/login and /auth/refresh are measured too.
export const RUST_MODES = [
  { id: 'every-request', label: 'Rust, `every-request`, IDENTITY_KEY (default)', vars: { SESSION_CHECK: 'every-request' }, identity: true },
  // The same without the isolate's replica cache: a KV read on every request
  // (what the cache saves).
  { id: 'every-request-nocache', label: 'Rust, `every-request`, IDENTITY_KEY, `REPLICA_CACHE_SECS=0` (a KV read per request)', vars: { SESSION_CHECK: 'every-request', REPLICA_CACHE_SECS: '0' }, identity: true },
  { id: 'every-request-noid', label: 'Rust, `every-request`, no IDENTITY_KEY', vars: { SESSION_CHECK: 'every-request' }, identity: false },
  { id: 'refresh-only', label: 'Rust, `refresh-only`, IDENTITY_KEY', vars: { SESSION_CHECK: 'refresh-only' }, identity: true },
  // Its Durable Object binding (AUTHORITY and its class) is read from
  // wrangler.toml at run time (see wranglerBindings below).
  { id: 'authority', label: 'Rust, `authority`, IDENTITY_KEY', vars: { SESSION_CHECK: 'authority' }, identity: true },
]

/** Keys made fresh for each run; nothing here is a real secret. */
export const BENCH_KEYS = {
  appsecret: 'bench-appsecret-' + randomBytes(8).toString('hex'),
  tokenSecret: randomBytes(48).toString('base64'),
  refreshSecret: randomBytes(48).toString('base64'),
  identityKey: randomBytes(32).toString('base64'),
}

/**
 * What wrangler.toml declares, read with wrangler's own parser:
 * compatibility date and flags, KV namespaces, Durable Objects (with
 * SQLite when a migration lists the class under new_sqlite_classes) and
 * rate limits (bound with a limit no benchmark reaches: every request
 * comes from one address, and the point is the worker's cost, not the
 * limiter's refusals).
 */
export async function wranglerBindings(file = path.join(root, 'wrangler.toml')) {
  const { experimental_readRawConfig } = await import('wrangler')
  const { rawConfig: c } = experimental_readRawConfig({ config: file })
  const sqliteClasses = new Set((c.migrations ?? []).flatMap((m) => m.new_sqlite_classes ?? []))
  const durableObjects = {}
  for (const b of c.durable_objects?.bindings ?? []) {
    if (b.script_name) throw new Error(`wrangler.toml: Durable Object ${b.name} lives in another worker (${b.script_name}); the bench cannot run that`)
    durableObjects[b.name] = { className: b.class_name, useSQLite: sqliteClasses.has(b.class_name) }
  }
  const ratelimits = {}
  for (const r of c.ratelimits ?? c.unsafe?.bindings?.filter((b) => b.type === 'ratelimit') ?? []) {
    ratelimits[r.name] = { namespace_id: String(r.namespace_id ?? r.name), simple: { limit: 1e9, period: r.simple?.period ?? 60 } }
  }
  return {
    compatibilityDate: c.compatibility_date,
    compatibilityFlags: c.compatibility_flags ?? [],
    kvNamespaces: (c.kv_namespaces ?? []).map((k) => k.binding),
    durableObjects,
    ratelimits,
  }
}

function stdioSink(tail) {
  return (stdout, stderr) => {
    const keep = (d) => {
      tail.text = (tail.text + d).slice(-8000)
    }
    stdout.on('data', keep)
    stderr.on('data', keep)
  }
}

/**
 * Starts one Miniflare; returns { name, url, mf, logs(), stop() }.
 * Nothing is persisted: KV and Durable Objects live in memory.
 */
export async function startMiniflare(name, workerOptions) {
  const tail = { text: '' }
  const mf = new Miniflare({
    host: '127.0.0.1',
    port: 0,
    kvPersist: false,
    durableObjectsPersist: false,
    cachePersist: false,
    handleRuntimeStdio: stdioSink(tail),
    ...workerOptions,
  })
  const unregister = atCleanup(() => mf.dispose())
  let url
  try {
    url = (await withTimeout(mf.ready, 60000, `starting ${name}`)).toString().replace(/\/$/, '')
  } catch (e) {
    unregister()
    await mf.dispose().catch(() => {})
    throw e
  }
  return {
    name,
    url,
    mf,
    logs: () => tail.text,
    async stop() {
      unregister()
      await withTimeout(mf.dispose(), 15000, `stopping ${name}`)
    },
  }
}

/**
 * The Miniflare options of a worker-build output directory (index.js and
 * its wasm), with wrangler.toml's compatibility settings; `missing` says
 * how to make it when it is not there.
 */
function workerBuild(dir, wrangler, missing) {
  if (!existsSync(path.join(dir, 'index.js'))) throw new Error(`${path.relative(root, dir)}/index.js is missing: ${missing}`)
  return {
    modules: true,
    modulesRoot: dir,
    scriptPath: path.join(dir, 'index.js'),
    modulesRules: [{ type: 'CompiledWasm', include: ['**/*.wasm'], fallthrough: true }],
    compatibilityDate: wrangler.compatibilityDate,
    compatibilityFlags: wrangler.compatibilityFlags,
  }
}

export function rustWorkerOptions({ wrangler, simUrl, originUrl, mode }) {
  const bindings = {
    WX_APPID: TEST_APPID,
    WX_APPSECRET: BENCH_KEYS.appsecret,
    WX_API_BASE: simUrl,
    ORIGIN_URL: originUrl,
    TOKEN_SECRET: BENCH_KEYS.tokenSecret,
    REFRESH_SECRET: BENCH_KEYS.refreshSecret,
    // Long enough that no access token expires during a long run; the
    // lifetime costs nothing per request.
    ACCESS_TOKEN_TTL: '86400',
    ...(mode.identity ? { IDENTITY_KEY: BENCH_KEYS.identityKey } : {}),
    ...mode.vars,
  }
  return {
    name: 'wx-edge',
    ...workerBuild(buildDir, wrangler, 'run scripts/build'),
    kvNamespaces: wrangler.kvNamespaces.length ? wrangler.kvNamespaces : ['SESSIONS'],
    ...(Object.keys(wrangler.durableObjects).length ? { durableObjects: wrangler.durableObjects } : {}),
    ...(Object.keys(wrangler.ratelimits).length ? { ratelimits: wrangler.ratelimits } : {}),
    bindings,
  }
}

export function passthroughOptions({ wrangler, originUrl, noStore = false, kvRead = false }) {
  return {
    name: 'passthrough',
    modules: true,
    scriptPath: path.join(here, 'workers', 'passthrough.mjs'),
    compatibilityDate: wrangler.compatibilityDate,
    ...(kvRead ? { kvNamespaces: ['SESSIONS'] } : {}),
    bindings: { ORIGIN_URL: originUrl, ...(noStore ? { NO_STORE: '1' } : {}) },
  }
}

/** Where scripts/bench builds bench/rust-passthrough (the Rust floor). */
export const rustPassthroughBuild = path.join(here, 'rust-passthrough', 'build')

/**
 * The Rust pass-through (bench/rust-passthrough): built like wx-edge, with
 * the same compatibility settings; only ORIGIN_URL is bound, as for the JS
 * pass-through.
 */
export function rustPassthroughOptions({ wrangler, originUrl }) {
  return {
    name: 'rust-passthrough',
    ...workerBuild(rustPassthroughBuild, wrangler, 'scripts/bench builds it'),
    bindings: { ORIGIN_URL: originUrl },
  }
}

export function jsLoginOptions({ wrangler, simUrl }) {
  return {
    name: 'js-login',
    modules: true,
    scriptPath: path.join(here, 'workers', 'js-login.mjs'),
    compatibilityDate: wrangler.compatibilityDate,
    kvNamespaces: ['SESSIONS'],
    durableObjects: { AUTHORITY: { className: 'JsAuthority', useSQLite: true } },
    bindings: {
      WX_APPID: TEST_APPID,
      WX_APPSECRET: BENCH_KEYS.appsecret,
      WX_API_BASE: simUrl,
      TOKEN_SECRET: BENCH_KEYS.tokenSecret,
      REFRESH_SECRET: BENCH_KEYS.refreshSecret,
      ACCESS_TOKEN_TTL: '86400',
    },
  }
}

/** POST /auth/login with a fresh code; returns the token pair. Bounded in time. */
export async function login(url, code) {
  const res = await fetch(`${url}/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ code }),
    signal: AbortSignal.timeout(15000),
  })
  const text = await res.text()
  if (res.status !== 200) throw new Error(`login ${code} at ${url}: ${res.status} ${text}`)
  return JSON.parse(text)
}

/** `n` logins, `concurrency` at a time, codes `<prefix>s<i>.1`. */
export async function loginMany(url, prefix, n, concurrency = 8) {
  const out = new Array(n)
  let next = 0
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, async () => {
    while (next < n) {
      const i = next++
      out[i] = await login(url, `${prefix}s${i}.1`)
    }
  }))
  return out
}

/**
 * The jose reference (bench/workers/js-jose.mjs), bundled with esbuild into
 * `tmpDir` (jose comes from node_modules), with the keys and appid of the
 * Rust targets so that their access tokens verify; its KV starts empty
 * (seed it with the sessions' replicas).
 */
export async function joseOptions({ wrangler, originUrl, tmpDir }) {
  const { build } = await import('esbuild')
  const outfile = path.join(tmpDir, 'js-jose.bundle.mjs')
  await build({
    entryPoints: [path.join(here, 'workers', 'js-jose.mjs')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    conditions: ['workerd', 'worker', 'browser'],
    outfile,
    logLevel: 'error',
  })
  return {
    name: 'js-jose',
    modules: true,
    modulesRoot: tmpDir,
    scriptPath: outfile,
    compatibilityDate: wrangler.compatibilityDate,
    compatibilityFlags: wrangler.compatibilityFlags,
    kvNamespaces: ['SESSIONS'],
    bindings: {
      WX_APPID: TEST_APPID,
      ORIGIN_URL: originUrl,
      TOKEN_SECRET: BENCH_KEYS.tokenSecret,
      IDENTITY_KEY: BENCH_KEYS.identityKey,
    },
  }
}
