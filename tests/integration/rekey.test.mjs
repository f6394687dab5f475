// POST /auth/session/rekey (issue 19) against the built worker in workerd
// and the WeChat simulator: after wx.checkSession failed, the mini-program
// sends a fresh wx.login code with its access token and the session's
// session_key is replaced by the one code2Session returns, so a legacy phone
// decryption (and the origin's service calls) work again without a new
// session. A code of another WeChat user is 409 openid_mismatch and changes
// nothing.
//
// Run: node_modules/.bin/node --test --test-concurrency=1 tests/integration/rekey.test.mjs
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startStack, call, login, bearer, freshLimitWindow, wechatLoginElsewhere } from '../support/stack.mjs';
import { loginSignature } from '../support/wechat-sim.mjs';
import { createAuth } from '../../client/index.mjs';
import { createFakeWx } from '../../client/test/support/fake-wx.mjs';

const SERVICE_TOKEN = randomBytes(48).toString('base64');
const service = bearer(SERVICE_TOKEN);

const stacks = [];
const users = new Set();
let s;

before(async () => {
  s = await startStack({ vars: { SERVICE_TOKEN }, limits: { SERVICE_LIMITER: 10_000 } });
  stacks.push(s);
});
after(async () => {
  for (const st of stacks) await st.close();
});

async function loginAs(st, code) {
  users.add(code.split('.')[0]);
  return login(st, code);
}

/** A wx.login whose code never reached the worker: WeChat's latest key moves on without it. */
async function loginElsewhere(st, code) {
  users.add(code.split('.')[0]);
  return wechatLoginElsewhere(st, code);
}

const rekey = (st, token, body, extra = {}) =>
  call(st, 'POST', '/auth/session/rekey', { body, headers: token ? bearer(token) : {}, ...extra });
const phone = (st, token, body) => call(st, 'POST', '/auth/phone', { body, headers: bearer(token) });
const check = (st, openid) => call(st, 'POST', `/auth/service/users/${openid}/session-key/check`, { headers: service });
const sign = (st, openid, data) =>
  call(st, 'POST', `/auth/service/users/${openid}/sign`, { body: { data }, headers: service });

function assertError(r, status, error) {
  assert.equal(r.status, status, `expected ${status} ${error}, got ${r.status} ${r.text}`);
  assert.ok(r.json, `error body must be JSON: ${r.text}`);
  assert.equal(r.json.error, error, r.text);
  assert.equal(typeof r.json.message, 'string', r.text);
}

describe('rekey', () => {
  test('WeChat rotated the key behind the worker: legacy phone fails; rekey → 204; then the legacy phone decryption succeeds', async () => {
    const t = await loginAs(s, 'rekeyer.1');
    await loginElsewhere(s, 'rekeyer.2'); // what made wx.checkSession fail
    assertError(
      await phone(s, t.access_token, s.sim.encryptPhone({ user: 'rekeyer', phone: '13800138000' })),
      400,
      'decrypt_failed',
    );
    assert.deepEqual((await check(s, t.openid)).json, { valid: false });

    const r = await rekey(s, t.access_token, { code: 'rekeyer.3' });
    assert.equal(r.status, 204, r.text);
    assert.equal(r.text, '');
    const key = s.sim.sessionKeyOf('rekeyer');

    const bound = await phone(s, t.access_token, s.sim.encryptPhone({ user: 'rekeyer', phone: '13800138000' }));
    assert.equal(bound.status, 200, bound.text);
    assert.equal(bound.json.purePhoneNumber, '13800138000');
    assert.equal(bound.json.openid, t.openid);
    assert.deepEqual((await check(s, t.openid)).json, { valid: true });
    assert.equal((await sign(s, t.openid, 'd')).json.signature, loginSignature(key, 'd'));

    // The same session, not a new login.
    const rec = await s.user(t.openid);
    assert.equal(rec.live_sessions, 1);
    assert.equal(rec.login_count, 1);
    const refreshed = await call(s, 'POST', '/auth/refresh', { body: { refresh_token: t.refresh_token } });
    assert.equal(refreshed.status, 200, refreshed.text);
    assert.equal(refreshed.json.phone_bound, true);
  });

  test('a code of another WeChat user → 409 openid_mismatch; nothing changes', async () => {
    const victim = await loginAs(s, 'victim.1');
    const keyBefore = s.sim.sessionKeyOf('victim');
    const before = await s.user(victim.openid);
    const r = await rekey(s, victim.access_token, { code: 'intruder.1' });
    assertError(r, 409, 'openid_mismatch');
    assert.match(r.json.message, /another WeChat user/);
    assert.equal(r.headers.get('x-wx-edge-error'), 'openid_mismatch');
    assert.ok(!r.text.includes(s.sim.sessionKeyOf('intruder')), 'a key in the answer');

    // The victim's session keeps its key: signatures, the check and a legacy phone still use it.
    assert.equal((await sign(s, victim.openid, 'x')).json.signature, loginSignature(keyBefore, 'x'));
    assert.deepEqual((await check(s, victim.openid)).json, { valid: true });
    const after = await s.user(victim.openid);
    assert.deepEqual(after, before, 'the user record changed');
    assert.equal((await call(s, 'GET', '/auth/session', { headers: bearer(victim.access_token) })).status, 200);
    const bound = await phone(s, victim.access_token, s.sim.encryptPhone({ user: 'victim', phone: '13900139000' }));
    assert.equal(bound.status, 200, bound.text);
    // The other user got nothing: no record, no session.
    const intruder = await loginElsewhere(s, 'intruder.2');
    assert.equal(await s.user(intruder.openid), undefined);
  });

  test('rekeying the older of two sessions makes its key the newest: check and sign use it', async () => {
    const older = await loginAs(s, 'dual.1');
    const newer = await loginAs(s, 'dual.2');
    assert.equal((await rekey(s, older.access_token, { code: 'dual.3' })).status, 204);
    const latest = s.sim.sessionKeyOf('dual');
    assert.deepEqual((await check(s, older.openid)).json, { valid: true });
    assert.equal((await sign(s, older.openid, 'n')).json.signature, loginSignature(latest, 'n'));
    // Only the rekeyed session holds the new key.
    const enc = s.sim.encryptPhone({ user: 'dual', phone: '13700137000' });
    assertError(await phone(s, newer.access_token, enc), 400, 'decrypt_failed');
    assert.equal((await phone(s, older.access_token, enc)).status, 200);
  });

  test('a form body works too', async () => {
    const t = await loginAs(s, 'former.1');
    const r = await rekey(s, t.access_token, undefined, { form: { code: 'former.2' } });
    assert.equal(r.status, 204, r.text);
    assert.equal((await sign(s, t.openid, 'f')).json.signature, loginSignature(s.sim.sessionKeyOf('former'), 'f'));
  });

  test('401s as /auth/session: no token, a bad or foreign token, a logged-out session; WeChat is not asked for a code', async () => {
    const t = await loginAs(s, 'errs.1');
    const before = s.sim.stats().code2session;
    assertError(await rekey(s, undefined, { code: 'errs.2' }), 401, 'unauthorized');
    assertError(await rekey(s, 'not.a.token', { code: 'errs.3' }), 401, 'invalid_token');
    assertError(await rekey(s, SERVICE_TOKEN, { code: 'errs.4' }), 401, 'invalid_token');
    assertError(await rekey(s, t.refresh_token, { code: 'errs.5' }), 401, 'invalid_token');
    assert.equal(s.sim.stats().code2session, before, 'code2Session was called for a refused caller');
    assert.equal((await call(s, 'POST', '/auth/logout', { headers: bearer(t.access_token) })).status, 204);
    assertError(await rekey(s, t.access_token, { code: 'errs.6' }), 401, 'session_revoked');
    assert.equal(await s.user(t.openid).then((u) => u.live_sessions), 0, 'the rekey brought no session back');
  });

  test('bad bodies → 400 invalid_request; an invalid or used code → 400 invalid_code; WeChat down → 502; GET → 405', async () => {
    const t = await loginAs(s, 'codes.1');
    for (const body of [{}, { code: 5 }, { code: '' }, { code: 'x'.repeat(300) }, 'not json', '[]']) {
      assertError(await rekey(s, t.access_token, body), 400, 'invalid_request');
    }
    const invalid = await rekey(s, t.access_token, { code: 'invalid.1' });
    assertError(invalid, 400, 'invalid_code');
    assert.equal(invalid.json.wechat_errcode, 40029);
    assert.equal((await rekey(s, t.access_token, { code: 'codes.2' })).status, 204);
    const used = await rekey(s, t.access_token, { code: 'codes.2' });
    assertError(used, 400, 'invalid_code');
    assert.equal(used.json.wechat_errcode, 40163);
    assertError(await rekey(s, t.access_token, { code: 'http500.1' }), 502, 'wechat_unavailable');
    const get = await call(s, 'GET', '/auth/session/rekey', { headers: bearer(t.access_token) });
    assertError(get, 405, 'method_not_allowed');
    assert.equal(get.headers.get('allow'), 'POST');
    // None of this ended the session.
    assert.equal((await call(s, 'GET', '/auth/session', { headers: bearer(t.access_token) })).status, 200);
  });
});

test("the client's ensureSessionKey against the real worker: wx.checkSession fails → re-key; the legacy phone then binds", async () => {
  users.add('clientkey');
  const wx = createFakeWx({ user: 'clientkey' });
  const auth = createAuth({ baseUrl: s.url, api: wx });
  const t = await auth.login();
  assert.equal(await auth.ensureSessionKey(), false, 'a fresh login: the key is alive');
  await loginElsewhere(s, 'clientkey.elsewhere');
  wx.sessionValid = false;
  assert.equal(await auth.ensureSessionKey(), true);
  assert.deepEqual(auth.tokens(), t, 'the same session');
  const out = await auth.bindPhone(s.sim.encryptPhone({ user: 'clientkey', phone: '13500135000' }));
  assert.equal(out.purePhoneNumber, '13500135000');
  assert.equal(wx.count('/auth/session/rekey'), 1);
  assert.deepEqual((await check(s, t.openid)).json, { valid: true });
});

test('LOGIN_LIMITER counts rekeys per client address: over it 429 with Retry-After, and code2Session is not called', async () => {
  const st = await startStack({ limits: { LOGIN_LIMITER: 3 } });
  stacks.push(st);
  const t = await loginAs(st, 'lim.1'); // from another address
  await freshLimitWindow();
  const from = { 'CF-Connecting-IP': '198.51.100.61' };
  for (let i = 2; i <= 4; i++) {
    const r = await call(st, 'POST', '/auth/session/rekey', {
      body: { code: `lim.${i}` },
      headers: { ...bearer(t.access_token), ...from },
    });
    assert.equal(r.status, 204, r.text);
  }
  const before = st.sim.stats().code2session;
  const r = await call(st, 'POST', '/auth/session/rekey', {
    body: { code: 'lim.5' },
    headers: { ...bearer(t.access_token), ...from },
  });
  assertError(r, 429, 'rate_limited');
  assert.ok(Number(r.headers.get('retry-after')) > 0);
  assert.equal(st.sim.stats().code2session, before, 'WeChat was called past the limit');
});

test('the log: one rekey line per call, ok or error with its code; no session_key, token or code in it', async () => {
  await new Promise((r) => setTimeout(r, 300));
  const lines = s
    .logs()
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('{') && l.includes('"event"'))
    .map((l) => JSON.parse(l))
    .filter((l) => l.event === 'rekey');
  assert.ok(lines.some((l) => l.outcome === 'ok' && typeof l.user === 'string'));
  assert.ok(lines.some((l) => l.outcome === 'error' && l.code === 'openid_mismatch' && l.status === 409));
  assert.ok(lines.some((l) => l.outcome === 'error' && l.code === 'invalid_code'));
  for (const st of stacks) {
    const text = st.logs();
    const secrets = [SERVICE_TOKEN, st.appsecret, st.tokenSecret];
    for (const user of users) secrets.push(...st.sim.sessionKeysOf(user));
    for (const secret of secrets) assert.ok(!text.includes(secret), `a log carries ${secret.slice(0, 6)}…`);
    assert.ok(!text.includes('rekeyer.3') && !text.includes('intruder.1'), 'a wx.login code is in the log');
  }
});
