// REQUIRE_PHONE and PHONE_ALLOWLIST against the built worker (workerd via
// Miniflare) with the WeChat simulator and the echo origin.
//
// Run: node_modules/.bin/node --test --test-concurrency=1 'tests/integration/phone*.test.mjs'
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, call, login, bearer } from '../support/stack.mjs';

function assertError(r, status, error) {
  assert.equal(r.status, status, `expected ${status} ${error}, got ${r.status} ${r.text}`);
  assert.ok(r.json, `error body must be JSON: ${r.text}`);
  assert.equal(r.json.error, error, r.text);
  assert.equal(typeof r.json.message, 'string', r.text);
}

const phone = (s, token, body) => call(s, 'POST', '/auth/phone', { body, headers: bearer(token) });
const proxied = (s, token, p = '/api/x') => call(s, 'GET', p, { headers: bearer(token) });

async function userRecord(s, openid) {
  const rec = await s.user(openid);
  assert.ok(rec, `the user record of ${openid} exists`);
  return rec;
}

/** Every session_key and WeChat access token a stack saw must stay out of its logs. */
async function assertLogsClean(s, users, ciphertexts = []) {
  const logs = s.logs();
  for (const u of users) {
    const k = s.sim.sessionKeyOf(u);
    if (k) assert.ok(!logs.includes(k), `session_key of ${u} in logs`);
  }
  for (const r of s.sim.stats().lastRequests) {
    if (r.query?.access_token) assert.ok(!logs.includes(r.query.access_token), 'WeChat access_token in logs');
  }
  for (const c of ciphertexts) assert.ok(!logs.includes(c), 'phone ciphertext in logs');
}

describe('REQUIRE_PHONE=true', () => {
  let s;
  before(async () => {
    s = await startStack({ vars: { REQUIRE_PHONE: 'true' } });
  });
  after(async () => {
    await s?.close();
  });

  test('no phone → 403 phone_required on the proxy, /auth/* still works; after binding → proxied with x-wx-phone', async () => {
    const t = await login(s, 'alice.1');
    assert.equal(t.phone_bound, false);
    const before = s.origin.requests.length;

    const p = await proxied(s, t.access_token);
    assertError(p, 403, 'phone_required');
    assertError(
      await call(s, 'POST', '/api/y', { body: { a: 1 }, headers: bearer(t.access_token) }),
      403,
      'phone_required',
    );
    assert.equal(s.origin.requests.length, before, 'nothing reached the origin');

    const sess = await call(s, 'GET', '/auth/session', { headers: bearer(t.access_token) });
    assert.equal(sess.status, 200, sess.text);
    assert.equal(sess.json.phone_bound, false);

    // Without a token it is still 401, not 403.
    assertError(await call(s, 'GET', '/api/x'), 401, 'unauthorized');

    const b = await phone(s, t.access_token, { code: 'phone-13900139000' });
    assert.equal(b.status, 200, b.text);
    assert.equal(b.json.phone_bound, true);

    const ok = await proxied(s, b.json.access_token);
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.headers['x-wx-phone'], '13900139000');
    assert.equal(ok.json.headers['x-wx-phone-country'], '86');

    // A later login of the bound user goes straight through.
    const t2 = await login(s, 'alice.2');
    assert.equal(t2.phone_bound, true);
    const ok2 = await proxied(s, t2.access_token);
    assert.equal(ok2.status, 200, ok2.text);
    assert.equal(ok2.json.headers['x-wx-phone'], '13900139000');
  });

  test('refresh of an unbound session still works (it is /auth/*)', async () => {
    const t = await login(s, 'bob.1');
    const r = await call(s, 'POST', '/auth/refresh', { body: { refresh_token: t.refresh_token } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.phone_bound, false);
    assertError(await proxied(s, r.json.access_token), 403, 'phone_required');
  });

  test('logs stay clean', async () => {
    await assertLogsClean(s, ['alice', 'bob']);
  });
});

describe('PHONE_ALLOWLIST=true', () => {
  let s;
  const ciphertexts = [];
  before(async () => {
    s = await startStack({ vars: { PHONE_ALLOWLIST: 'true' } });
  });
  after(async () => {
    await s?.close();
  });

  test('unlisted phone → 403 not_internal_user and nothing bound; listed → 200', async () => {
    const t = await login(s, 'alice.1');
    // code path, unlisted
    assertError(await phone(s, t.access_token, { code: 'phone-13900000001' }), 403, 'not_internal_user');
    // legacy path, not yet listed
    const enc1 = s.sim.encryptPhone({ user: 'alice', phone: '13800138000' });
    ciphertexts.push(enc1.encryptedData);
    assertError(await phone(s, t.access_token, enc1), 403, 'not_internal_user');

    const rec = await userRecord(s, t.openid);
    assert.equal(rec.phone ?? null, null, `no phone bound: ${JSON.stringify(rec)}`);
    const sess = await call(s, 'GET', '/auth/session', { headers: bearer(t.access_token) });
    assert.equal(sess.json.phone_bound, false);
    const p = await proxied(s, t.access_token);
    assert.equal(p.status, 200, p.text); // REQUIRE_PHONE is off
    assert.equal(p.json.headers['x-wx-phone'], undefined);

    await s.kv.put('allow:phone:+8613800138000', '1');
    const enc2 = s.sim.encryptPhone({ user: 'alice', phone: '13800138000' });
    ciphertexts.push(enc2.encryptedData);
    const b = await phone(s, t.access_token, enc2);
    assert.equal(b.status, 200, b.text);
    assert.equal(b.json.purePhoneNumber, '13800138000');
    assert.equal(b.json.phone_bound, true);
    const rec2 = await userRecord(s, t.openid);
    assert.ok(JSON.stringify(rec2.phone ?? null).includes('13800138000'), JSON.stringify(rec2));
    const p2 = await proxied(s, b.json.access_token);
    assert.equal(p2.json.headers['x-wx-phone'], '13800138000');
  });

  test('listed via the code path → 200', async () => {
    await s.kv.put('allow:phone:+8613700137000', '1');
    const t = await login(s, 'carl.1');
    const b = await phone(s, t.access_token, { code: 'phone-13700137000' });
    assert.equal(b.status, 200, b.text);
    assert.equal(b.json.purePhoneNumber, '13700137000');
  });

  test('logs stay clean', async () => {
    await assertLogsClean(s, ['alice', 'carl'], ciphertexts);
  });
});

describe('REQUIRE_PHONE=true and PHONE_ALLOWLIST=true', () => {
  let s;
  before(async () => {
    s = await startStack({ vars: { REQUIRE_PHONE: 'true', PHONE_ALLOWLIST: 'true' } });
  });
  after(async () => {
    await s?.close();
  });

  test('an unlisted user stays locked out', async () => {
    const t = await login(s, 'outsider.1');
    assertError(await phone(s, t.access_token, { code: 'phone-13900000002' }), 403, 'not_internal_user');
    assertError(await proxied(s, t.access_token), 403, 'phone_required');
    const t2 = await login(s, 'outsider.2');
    assert.equal(t2.phone_bound, false);
    assertError(await proxied(s, t2.access_token), 403, 'phone_required');
    const sess = await call(s, 'GET', '/auth/session', { headers: bearer(t2.access_token) });
    assert.equal(sess.status, 200, sess.text);
  });

  test('a listed user gets in; once taken off the list, a new login has phone_bound false and is locked out', async () => {
    await s.kv.put('allow:phone:+8613800138000', '1');
    const t = await login(s, 'staff.1');
    const b = await phone(s, t.access_token, { code: 'phone-13800138000' });
    assert.equal(b.status, 200, b.text);
    const ok = await proxied(s, b.json.access_token);
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.headers['x-wx-phone'], '13800138000');

    const t2 = await login(s, 'staff.2');
    assert.equal(t2.phone_bound, true);
    assert.equal((await proxied(s, t2.access_token)).status, 200);

    await s.kv.delete('allow:phone:+8613800138000');
    assert.equal(await s.kv.get('allow:phone:+8613800138000'), null);
    const t3 = await login(s, 'staff.3');
    assert.equal(t3.phone_bound, false);
    assertError(await proxied(s, t3.access_token), 403, 'phone_required');
    const sess = await call(s, 'GET', '/auth/session', { headers: bearer(t3.access_token) });
    assert.equal(sess.status, 200, sess.text);
    assert.equal(sess.json.phone_bound, false);
  });

  test('logs stay clean', async () => {
    await assertLogsClean(s, ['outsider', 'staff']);
  });
});
