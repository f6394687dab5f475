// Key rotation without outages (issue 17), in workerd. Each "deploy" is a
// new worker on the same persisted KV and session authorities, started
// with the next configuration, as `wrangler secret put` + `wrangler deploy`
// would leave it.
//
// - The JWKS lists IDENTITY_KEY, IDENTITY_KEY_NEXT and IDENTITY_KEY_PREVIOUS
//   under distinct kids, with the Cache-Control verifiers rely on; only the
//   current key signs.
// - The three identity-key deploys (add next → promote → drop previous)
//   give an origin verifier holding a cached JWKS zero refusals, while a
//   hard cut (the old single-key switch) gives one.
// - A reset AppSecret is picked up: the cached WeChat access_token made
//   under the old secret is refused, fetched again, and the call retried.
// - A client holding tokens made before a TOKEN_SECRET rotation keeps
//   working through it, and its refresh token still works after
//   TOKEN_SECRET_PREVIOUS is removed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startStack, call, login, bearer, TEST_APPID } from '../support/stack.mjs';
import { startWechatSim } from '../support/wechat-sim.mjs';
import { serve } from '../support/serve.mjs';
import { wxIdentityExpress } from '../../origin/node/lib/middleware.mjs';
import { httpJwksFetcher } from '../../origin/node/lib/wx-identity.mjs';

const key = () => randomBytes(32).toString('base64');
const secret = () => randomBytes(48).toString('base64');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A directory the deploys of one test share their KV and authorities in. */
function persisted(t) {
  const dir = mkdtempSync(path.join(tmpdir(), 'wx-edge-rotation-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return { kvPersist: path.join(dir, 'kv'), durableObjectsPersist: path.join(dir, 'do') };
}

/** A stack whose close() may be called again (by the test, then by t.after). */
async function deployed(t, opts) {
  const s = await startStack(opts);
  const close = s.close;
  let closing;
  s.close = () => (closing ??= close());
  t.after(() => s.close());
  return s;
}

/** The kid of a JWT (its header's). */
function kidOf(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[0], 'base64url').toString()).kid;
}

async function jwks(s) {
  const r = await call(s, 'GET', '/.well-known/jwks.json');
  assert.equal(r.status, 200, r.text);
  return { keys: r.json.keys, cacheControl: r.headers.get('cache-control') };
}

test('the JWKS lists the current, next and previous keys under distinct kids; only the current one signs', async (t) => {
  const [current, next, previous] = [key(), key(), key()];
  const s = await startStack({
    vars: { IDENTITY_KEY: current, IDENTITY_KEY_NEXT: next, IDENTITY_KEY_PREVIOUS: previous },
  });
  t.after(() => s.close());
  const { keys, cacheControl } = await jwks(s);
  assert.equal(cacheControl, 'public, max-age=300');
  assert.equal(keys.length, 3);
  assert.equal(new Set(keys.map((k) => k.kid)).size, 3, 'distinct kids');
  assert.equal(new Set(keys.map((k) => k.x)).size, 3, 'distinct keys');
  for (const k of keys) {
    assert.deepEqual(Object.keys(k).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x']);
    assert.equal(k.alg, 'EdDSA');
    assert.equal(k.use, 'sig');
  }
  // The assertion a proxied request carries names the first (current) key.
  const u = await login(s, 'rot.jwks.1');
  const r = await call(s, 'GET', '/api/who', { headers: bearer(u.access_token) });
  assert.equal(r.status, 200, r.text);
  const seen = s.origin.requests.at(-1).headers['x-wx-identity'];
  assert.ok(seen, 'an assertion was sent');
  assert.equal(kidOf(seen), keys[0].kid);
  // No seed is ever shown.
  for (const seed of [current, next, previous]) {
    const hex = Buffer.from(seed, 'base64').toString('base64url');
    assert.ok(!JSON.stringify(keys).includes(hex));
  }
});

test('IDENTITY_KEY_NEXT equal to IDENTITY_KEY → 500 naming IDENTITY_KEY_NEXT', async (t) => {
  const k = key();
  const s = await startStack({ vars: { IDENTITY_KEY: k, IDENTITY_KEY_NEXT: k } });
  t.after(() => s.close());
  const r = await call(s, 'GET', '/.well-known/jwks.json');
  assert.equal(r.status, 500, r.text);
  assert.equal(r.json.error, 'server_misconfigured');
  assert.match(r.json.message, /IDENTITY_KEY_NEXT/);
  assert.ok(!r.text.includes(k));
});

/** A Node origin verifying X-WX-Identity against the JWKS of whichever worker runs now. */
async function verifyingOrigin(t, jwksUrl, policy) {
  let mw;
  const refusals = [];
  const server = createServer((req, res) =>
    mw(req, res, () => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ openid: req.wxIdentity.openid }));
    }),
  );
  const origin = await serve(server, { port: 0, host: '127.0.0.1' });
  t.after(() => origin.close());
  mw = wxIdentityExpress({
    audience: origin.url,
    fetchJwks: () => httpJwksFetcher(jwksUrl())(),
    onError: (e) => refusals.push(String(e)),
    ...policy,
  });
  return origin;
}

/**
 * Runs `deploys` (IDENTITY_KEY* settings) one after the other behind one
 * verifying origin, a client making requests throughout (and through each
 * wait). Returns the statuses the client saw.
 */
async function identityDeploys(t, deploys, { waitMs, policy }) {
  const persist = persisted(t);
  let stack;
  const origin = await verifyingOrigin(t, () => `${stack.url}/.well-known/jwks.json`, policy);
  const statuses = [];
  let access;
  for (const [i, vars] of deploys.entries()) {
    stack = await startStack({
      origin,
      vars,
      miniflare: persist,
    });
    try {
      access ??= (await login(stack, 'rot.identity.1')).access_token;
      const end = Date.now() + (i < deploys.length - 1 ? waitMs : 0);
      do {
        const r = await call(stack, 'GET', `/api/deploy/${i}`, { headers: bearer(access) });
        statuses.push(r.status === 200 ? 200 : `${r.status} ${r.text} (deploy ${i})`);
        await sleep(200);
      } while (Date.now() < end);
    } finally {
      await stack.close();
    }
  }
  return statuses;
}

// The verifiers' policy, scaled down so the test takes seconds: a cache
// kept `maxAge` seconds, refetched on an unknown kid at most every
// `minRefetchInterval` seconds (300 and 30 in production). The wait between
// deploys is the runbook's "JWKS cache age", scaled the same way.
const POLICY = { maxAge: 4, minRefetchInterval: 4 };

test('the three identity-key deploys: a verifier with a cached JWKS sees zero refusals', async (t) => {
  const [a, b] = [key(), key()];
  const statuses = await identityDeploys(
    t,
    [
      { IDENTITY_KEY: a },
      { IDENTITY_KEY: a, IDENTITY_KEY_NEXT: b }, // 1. publish next
      { IDENTITY_KEY: b, IDENTITY_KEY_PREVIOUS: a }, // 2. promote
      { IDENTITY_KEY: b }, // 3. drop previous
    ],
    { waitMs: (POLICY.maxAge + 1) * 1000, policy: POLICY },
  );
  assert.ok(statuses.length >= 12, `requests made: ${statuses.length}`);
  assert.deepEqual(
    statuses.filter((s) => s !== 200),
    [],
    'no refusal at any step',
  );
});

test('control: a hard cut to a new IDENTITY_KEY is refused by the same verifier', async (t) => {
  const [a, b] = [key(), key()];
  const statuses = await identityDeploys(t, [{ IDENTITY_KEY: a }, { IDENTITY_KEY: b }], {
    waitMs: 0,
    policy: { maxAge: 300, minRefetchInterval: 30 },
  });
  assert.ok(
    statuses.some((s) => String(s).startsWith('401')),
    `the cut is seen: ${JSON.stringify(statuses)}`,
  );
});

test('TOKEN_SECRET rotation: tokens made before it keep working; refresh tokens outlive TOKEN_SECRET_PREVIOUS', async (t) => {
  const persist = persisted(t);
  const [oldSecret, newSecret] = [secret(), secret()];
  const deploy = (vars) => deployed(t, { vars, miniflare: persist });

  // Before: two clients log in under the old secret.
  let s = await deploy({ TOKEN_SECRET: oldSecret });
  const one = await login(s, 'rot.token.1');
  const two = await login(s, 'rot.token.2');
  const oldKid = kidOf(one.access_token);
  assert.ok(oldKid && oldKid.length >= 16, `a kid: ${oldKid}`);
  assert.ok(
    !oldSecret.includes(oldKid) && !createHash('sha256').update(oldSecret).digest('base64url').startsWith(oldKid),
  );
  await s.close();

  // Rotation: TOKEN_SECRET=new, TOKEN_SECRET_PREVIOUS=old. Tokens in
  // flight still work: no 401 the client has to act on.
  s = await deploy({ TOKEN_SECRET: newSecret, TOKEN_SECRET_PREVIOUS: oldSecret });
  for (const p of ['/api/orders', '/auth/session']) {
    const r = await call(s, 'GET', p, { headers: bearer(one.access_token) });
    assert.equal(r.status, 200, `${p}: ${r.text}`);
  }
  const refreshed = await call(s, 'POST', '/auth/refresh', { body: { refresh_token: one.refresh_token } });
  assert.equal(refreshed.status, 200, refreshed.text);
  const newKid = kidOf(refreshed.json.access_token);
  assert.notEqual(newKid, oldKid, 'new tokens are made under the new secret');
  assert.equal((await call(s, 'GET', '/api/x', { headers: bearer(refreshed.json.access_token) })).status, 200);
  await s.close();

  // TOKEN_SECRET_PREVIOUS removed (after the access-token TTL): the old
  // access token is no longer accepted, but refresh tokens from before the
  // rotation still work, and so do tokens made since.
  s = await deploy({ TOKEN_SECRET: newSecret });
  assert.equal((await call(s, 'GET', '/api/x', { headers: bearer(one.access_token) })).status, 401);
  assert.equal((await call(s, 'GET', '/api/x', { headers: bearer(refreshed.json.access_token) })).status, 200);
  const later = await call(s, 'POST', '/auth/refresh', { body: { refresh_token: two.refresh_token } });
  assert.equal(later.status, 200, later.text);
  assert.equal(later.json.openid, two.openid);
  assert.equal(kidOf(later.json.access_token), newKid);
  const again = await call(s, 'POST', '/auth/refresh', { body: { refresh_token: refreshed.json.refresh_token } });
  assert.equal(again.status, 200, again.text);
});

test('TOKEN_SECRET_PREVIOUS equal to TOKEN_SECRET → 500 naming TOKEN_SECRET_PREVIOUS, never its value', async (t) => {
  const v = secret();
  const s = await startStack({ vars: { TOKEN_SECRET: v, TOKEN_SECRET_PREVIOUS: v } });
  t.after(() => s.close());
  const r = await call(s, 'POST', '/auth/login', { body: { code: 'rot.cfg.1' } });
  assert.equal(r.status, 500, r.text);
  assert.match(r.json.message, /TOKEN_SECRET_PREVIOUS/);
  assert.ok(!r.text.includes(v));
});

test('ADMIN_TOKEN_PREVIOUS is accepted alongside ADMIN_TOKEN during a change-over', async (t) => {
  const [now, before] = [secret(), secret()];
  const s = await startStack({ vars: { ADMIN_TOKEN: now, ADMIN_TOKEN_PREVIOUS: before } });
  t.after(() => s.close());
  const u = await login(s, 'rot.admin.1');
  for (const token of [now, before]) {
    const r = await call(s, 'GET', `/auth/admin/users/${u.openid}`, { headers: bearer(token) });
    assert.equal(r.status, 200, r.text);
  }
  const r = await call(s, 'GET', `/auth/admin/users/${u.openid}`, { headers: bearer(secret()) });
  assert.equal(r.status, 401, r.text);
});

test('a reset AppSecret is picked up: the refused cached access_token is fetched again and the call retried', async (t) => {
  const persist = persisted(t);
  const [oldSecret, newSecret] = [
    'appsecret-' + randomBytes(8).toString('hex'),
    'appsecret-' + randomBytes(8).toString('hex'),
  ];
  const sim = await startWechatSim({ appid: TEST_APPID, secret: oldSecret });
  t.after(() => sim.close());
  const deploy = (appSecret) => deployed(t, { sim, vars: { WX_APPSECRET: appSecret }, miniflare: persist });
  const bind = (s, access, code) => call(s, 'POST', '/auth/phone', { headers: bearer(access), body: { code } });

  let s = await deploy(oldSecret);
  const u = await login(s, 'rot.appsecret.1');
  assert.equal((await bind(s, u.access_token, 'phone-13800138001')).status, 200);
  const cached = sim.stats().lastRequests.findLast((r) => r.path.includes('getuserphonenumber'));
  assert.ok(cached, 'a token was used');
  await s.close();

  // The AppSecret is reset in the console, then `wrangler secret put
  // WX_APPSECRET` and a deploy: the token cached in KV is WeChat's no more.
  sim.resetSecret(newSecret);
  s = await deploy(newSecret);
  const before = sim.stats();
  const r = await bind(s, u.access_token, 'phone-13800138002');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.purePhoneNumber, '13800138002');
  const after = sim.stats();
  assert.equal(after.token_errors - before.token_errors, 1, 'the cached token was refused once');
  assert.ok(after.stable_token > before.stable_token, 'a new token was fetched');
  assert.equal(after.getuserphonenumber - before.getuserphonenumber, 2, 'and the call retried once');
  // The new token is cached: the next call does not fetch again.
  const mid = sim.stats();
  assert.equal((await bind(s, u.access_token, 'phone-13800138003')).status, 200);
  assert.equal(sim.stats().stable_token, mid.stable_token);
  assert.equal(sim.stats().token_errors, mid.token_errors);
});
