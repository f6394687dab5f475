// The whole stack for integration tests: the built worker (build/index.js)
// running in workerd through Miniflare, with real (local) KV, a WeChat
// simulator and an echo origin, all on 127.0.0.1.
//
//   const stack = await startStack({ vars: { SESSION_CHECK: 'refresh-only' } })
//   await fetch(stack.url + '/auth/login', ...)
//   stack.kv        // the SESSIONS namespace (get/put/list) as the worker sees it
//   stack.user(openid)  // the user's record and live sessions, from its authority (operator endpoint)
//   stack.logs()    // everything the worker wrote to stdout/stderr
//   await stack.close()
//
// Options beyond vars/omit/kvBinding/authorityBinding: `limits` — rate
// limits per binding, e.g. { LOGIN_LIMITER: 5 } (per 60 s); `origin` — an origin
// you started yourself ({url}, e.g. one running an identity verifier); it
// becomes ORIGIN_URL, no echo origin is started and close() leaves yours
// running; `sim` — a WeChat simulator you started yourself (close() leaves it
// running); `miniflare` — extra Miniflare options (e.g. outboundService).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { Miniflare } from 'miniflare';
import { startWechatSim } from './wechat-sim.mjs';
import { startEchoOrigin } from './echo-origin.mjs';
import { assertMatchesContract } from './openapi.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const buildDir = path.join(root, 'build');
export const TEST_APPID = 'wxd930ea5d5a258f4f';
export const TEST_APPSECRET = 'test-appsecret-' + randomBytes(8).toString('hex');
// Test-only keys, made fresh for each run.
export const TEST_TOKEN_SECRET = randomBytes(48).toString('base64');
export const TEST_REFRESH_SECRET = randomBytes(48).toString('base64');
export const TEST_IDENTITY_KEY = randomBytes(32).toString('base64');
export const TEST_ADMIN_TOKEN = randomBytes(48).toString('base64');

export function built() {
  return existsSync(path.join(buildDir, 'index.js'));
}

export async function startStack({
  vars = {},
  omit = [],
  kvBinding = true,
  authorityBinding = true,
  limits = {},
  origin: ownOrigin,
  sim: ownSim,
  miniflare = {},
} = {}) {
  if (!built()) throw new Error('build/index.js is missing: run scripts/build first');
  const sim = ownSim ?? (await startWechatSim({ appid: TEST_APPID, secret: TEST_APPSECRET }));
  const origin = ownOrigin ?? (await startEchoOrigin());
  const bindings = {
    WX_APPID: TEST_APPID,
    WX_APPSECRET: TEST_APPSECRET,
    WX_API_BASE: sim.url,
    ORIGIN_URL: origin.url,
    TOKEN_SECRET: TEST_TOKEN_SECRET,
    REFRESH_SECRET: TEST_REFRESH_SECRET,
    IDENTITY_KEY: TEST_IDENTITY_KEY,
    ADMIN_TOKEN: TEST_ADMIN_TOKEN,
    WX_TIMEOUT_MS: '1500',
    ...vars,
  };
  for (const k of omit) delete bindings[k];
  const out = [];
  const mf = new Miniflare({
    modules: true,
    modulesRoot: buildDir,
    scriptPath: path.join(buildDir, 'index.js'),
    modulesRules: [{ type: 'CompiledWasm', include: ['**/*.wasm'], fallthrough: true }],
    compatibilityDate: '2026-08-01',
    kvNamespaces: kvBinding ? ['SESSIONS'] : [],
    // The session authority, SQLite-backed as in wrangler.toml.
    durableObjects: authorityBinding ? { AUTHORITY: { className: 'Authority', useSQLite: true } } : {},
    // The rate limits, enforced; generous by default so that suites doing
    // many logins from 127.0.0.1 are not cut off, tight where a test asks.
    ratelimits: Object.fromEntries(
      Object.entries({
        LOGIN_LIMITER: 10_000,
        REFRESH_LIMITER: 10_000,
        PHONE_LIMITER: 10_000,
        WX_LOGIN_LIMITER: 10_000,
        ADMIN_LIMITER: 10_000,
        SERVICE_LIMITER: 10_000,
        ...limits,
      }).map(([name, limit], i) => [name, { namespace_id: String(2001 + i), simple: { limit, period: 60 } }]),
    ),
    bindings,
    handleRuntimeStdio(stdout, stderr) {
      stdout.on('data', (d) => out.push(d.toString()));
      stderr.on('data', (d) => out.push(d.toString()));
    },
    ...miniflare,
  });
  const url = (await mf.ready).toString().replace(/\/$/, '');
  const kv = kvBinding ? await mf.getKVNamespace('SESSIONS') : null;
  // What a user's authority keeps, read the way an operator does.
  async function user(openid) {
    const res = await fetch(`${url}/auth/admin/users/${openid}`, {
      headers: { authorization: `Bearer ${bindings.ADMIN_TOKEN}` },
    });
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw new Error(`admin view of ${openid}: ${res.status} ${await res.text()}`);
    return res.json();
  }
  return {
    url,
    appid: TEST_APPID,
    appsecret: TEST_APPSECRET,
    tokenSecret: bindings.TOKEN_SECRET,
    refreshSecret: bindings.REFRESH_SECRET,
    identityKey: bindings.IDENTITY_KEY,
    vars: bindings,
    sim,
    origin,
    mf,
    kv,
    user,
    logs: () => out.join(''),
    async close() {
      await mf.dispose();
      if (!ownSim) await sim.close();
      if (!ownOrigin) await origin.close();
    },
  };
}

// Small helpers shared by the integration tests.
export async function call(stack, method, p, { body, headers = {}, form } = {}) {
  const init = { method, headers: { ...headers }, redirect: 'manual' };
  if (form !== undefined) {
    init.body = new URLSearchParams(form).toString();
    init.headers['content-type'] = 'application/x-www-form-urlencoded';
  } else if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    init.headers['content-type'] ??= 'application/json';
  }
  const r = await readResponse(await fetch(stack.url + p, init));
  // Every answer of the worker's own must be what openapi.yaml describes.
  assertMatchesContract(method, p, r);
  return r;
}

/** A fetch Response as { status, headers, text, json (undefined if not JSON) }. */
export async function readResponse(res) {
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

export async function login(stack, code) {
  const r = await call(stack, 'POST', '/auth/login', { body: { code } });
  if (r.status !== 200) throw new Error(`login ${code} failed: ${r.status} ${r.text}`);
  return r.json;
}

export const bearer = (t) => ({ authorization: 'Bearer ' + t });

/**
 * Wait, if need be, until at least `seconds` are left in the current rate-limit
 * window. Miniflare's limiters count in fixed windows aligned to the epoch
 * (floor(now / period)), so a test that counts 429s against a limit fails
 * when its requests straddle a window boundary; a slow machine makes that
 * likely. Call this right before the counted burst.
 */
export async function freshLimitWindow(seconds = 20, periodSeconds = 60) {
  const periodMs = periodSeconds * 1000;
  const left = periodMs - (Date.now() % periodMs);
  if (left < seconds * 1000) await new Promise((r) => setTimeout(r, left + 50));
}

/**
 * A wx.login whose code never reached the worker: code2Session straight at
 * the simulator, so WeChat's latest session_key for that user moves on
 * without the worker knowing. Returns WeChat's reply.
 */
export async function wechatLoginElsewhere(stack, code) {
  const q = new URLSearchParams({
    appid: stack.appid,
    secret: stack.appsecret,
    js_code: code,
    grant_type: 'authorization_code',
  });
  const body = JSON.parse(await (await fetch(`${stack.sim.url}/sns/jscode2session?${q}`)).text());
  if (!body.session_key) throw new Error(`code2Session failed: ${JSON.stringify(body)}`);
  return body;
}
