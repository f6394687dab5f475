// REPLICA_CACHE_SECS: an isolate keeps what the sessions' KV replica said
// for a few seconds (SESSION_CHECK=every-request). A logout made through
// another isolate is refused within the bound; one made through the same
// isolate at once; 0 turns the cache off.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Miniflare } from 'miniflare';
import { startWechatSim } from '../support/wechat-sim.mjs';
import { startEchoOrigin } from '../support/echo-origin.mjs';
import {
  buildDir,
  built,
  startStack,
  call,
  login,
  bearer,
  readResponse,
  TEST_APPID,
  TEST_APPSECRET,
  TEST_TOKEN_SECRET,
  TEST_REFRESH_SECRET,
  TEST_IDENTITY_KEY,
} from '../support/stack.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Two copies of the worker — two isolates, each with its own cache — over
 * one KV namespace and one set of session authorities, as two edge
 * locations are (without KV's own propagation delay, which Miniflare does
 * not have).
 */
async function twoIsolates(vars) {
  if (!built()) throw new Error('build/index.js is missing: run scripts/build first');
  const sim = await startWechatSim({ appid: TEST_APPID, secret: TEST_APPSECRET });
  const origin = await startEchoOrigin();
  const bindings = {
    WX_APPID: TEST_APPID,
    WX_APPSECRET: TEST_APPSECRET,
    WX_API_BASE: sim.url,
    ORIGIN_URL: origin.url,
    TOKEN_SECRET: TEST_TOKEN_SECRET,
    REFRESH_SECRET: TEST_REFRESH_SECRET,
    IDENTITY_KEY: TEST_IDENTITY_KEY,
    WX_TIMEOUT_MS: '1500',
    SESSION_CHECK: 'every-request',
    ...vars,
  };
  const ratelimits = Object.fromEntries(
    ['LOGIN_LIMITER', 'REFRESH_LIMITER', 'PHONE_LIMITER', 'WX_LOGIN_LIMITER', 'ADMIN_LIMITER', 'SERVICE_LIMITER'].map(
      (name, i) => [name, { namespace_id: String(3001 + i), simple: { limit: 10_000, period: 60 } }],
    ),
  );
  const worker = (name, durableObjects) => ({
    name,
    modules: true,
    modulesRoot: buildDir,
    scriptPath: path.join(buildDir, 'index.js'),
    modulesRules: [{ type: 'CompiledWasm', include: ['**/*.wasm'], fallthrough: true }],
    compatibilityDate: '2026-08-01',
    kvNamespaces: { SESSIONS: 'sessions-shared' },
    durableObjects,
    ratelimits,
    bindings,
  });
  const mf = new Miniflare({
    workers: [
      worker('a', { AUTHORITY: { className: 'Authority', useSQLite: true } }),
      worker('b', { AUTHORITY: { className: 'Authority', useSQLite: true, scriptName: 'a' } }),
    ],
    handleRuntimeStdio(stdout, stderr) {
      stdout.resume();
      stderr.resume();
    },
  });
  const url = (await mf.ready).toString().replace(/\/$/, '');
  const b = await mf.getWorker('b');
  return {
    url,
    /** A request to the second isolate. */
    async callB(method, p, headers) {
      return readResponse(await b.fetch(url + p, { method, headers }));
    },
    async close() {
      await mf.dispose();
      await sim.close();
      await origin.close();
    },
  };
}

const stacks = [];
after(async () => {
  for (const s of stacks) await s.close();
});

test('a logout through another isolate: the access token is refused within REPLICA_CACHE_SECS', async () => {
  const s = await twoIsolates({ REPLICA_CACHE_SECS: '3' });
  stacks.push(s);
  const t = await login(s, 'elsewhere.1');
  const get = () => call(s, 'GET', '/api/orders', { headers: bearer(t.access_token) });
  // The second isolate knows the session too, then logs it out.
  assert.equal((await s.callB('GET', '/api/orders', bearer(t.access_token))).status, 200);
  assert.equal((await get()).status, 200);
  const out = await s.callB('POST', '/auth/logout', bearer(t.access_token));
  assert.equal(out.status, 204, out.text);
  const loggedOut = Date.now();
  // At once where it was made.
  assert.equal((await s.callB('GET', '/api/orders', bearer(t.access_token))).status, 401);
  // The first isolate still remembers the session for a moment (the cache
  // is on: this is what it saves), then never again.
  assert.equal((await get()).status, 200, 'served from the isolate cache right after the logout');
  let refusedAfter;
  while (Date.now() - loggedOut < 6000) {
    const r = await get();
    if (r.status === 401) {
      assert.equal(r.json?.error, 'session_revoked', r.text);
      refusedAfter = Date.now() - loggedOut;
      break;
    }
    assert.equal(r.status, 200, r.text);
    await sleep(50);
  }
  assert.ok(refusedAfter !== undefined, 'still served 6 s after the logout');
  assert.ok(refusedAfter <= 3000 + 300, `refused ${refusedAfter} ms after the logout (bound: 3 s)`);
  for (let i = 0; i < 5; i++) assert.equal((await get()).status, 401, 'never served again');
});

test('REPLICA_CACHE_SECS=0: a logout through another isolate is refused at once', async () => {
  const s = await twoIsolates({ REPLICA_CACHE_SECS: '0' });
  stacks.push(s);
  const t = await login(s, 'elsewhere.2');
  assert.equal((await call(s, 'GET', '/api/orders', { headers: bearer(t.access_token) })).status, 200);
  assert.equal((await s.callB('POST', '/auth/logout', bearer(t.access_token))).status, 204);
  const r = await call(s, 'GET', '/api/orders', { headers: bearer(t.access_token) });
  assert.equal(r.status, 401, r.text);
  assert.equal(r.json?.error, 'session_revoked');
});

test('the default: a logout through the same isolate is refused at once, and the cache is on', async () => {
  const s = await startStack();
  stacks.push(s);
  const t = await login(s, 'here.1');
  const get = () => call(s, 'GET', '/api/orders', { headers: bearer(t.access_token) });
  assert.equal((await get()).status, 200);
  // KV loses the replica behind this isolate's back (another location's
  // write): the isolate's memory still answers, which shows the cache on.
  const keys = (await s.kv.list({ prefix: 'session:' })).keys;
  assert.equal(keys.length, 1);
  const replica = await s.kv.get(keys[0].name);
  await s.kv.delete(keys[0].name);
  assert.equal((await get()).status, 200, 'served from the isolate cache');
  await s.kv.put(keys[0].name, replica);
  assert.equal((await call(s, 'POST', '/auth/logout', { headers: bearer(t.access_token) })).status, 204);
  const r = await get();
  assert.equal(r.status, 401, r.text);
  assert.equal(r.json?.error, 'session_revoked');
});

test('REPLICA_CACHE_SECS out of range is a configuration error', async () => {
  const s = await startStack({ vars: { REPLICA_CACHE_SECS: '61' } });
  stacks.push(s);
  const r = await call(s, 'GET', '/api/orders', { headers: bearer('x') });
  assert.equal(r.status, 500, r.text);
  assert.equal(r.json?.error, 'server_misconfigured');
  assert.ok(!r.text.includes('61'), 'the value is not echoed');
});
