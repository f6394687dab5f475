// POST /auth/phone against the built worker (workerd via Miniflare), the
// WeChat simulator and the echo origin: the legacy encryptedData/iv path, the
// current code path with the cached stable_token, token refetch on 40001,
// concurrency, and that nothing secret reaches the logs.
//
// Run: node_modules/.bin/node --test --test-concurrency=1 'tests/integration/phone*.test.mjs'
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, call, login, bearer } from '../support/stack.mjs';

const GUPN = '/wxa/business/getuserphonenumber';
const STABLE = '/cgi-bin/stable_token';

let stack;
/** Every stack started here, for the log check at the end. */
const stacks = [];
/** Users that logged in (their session_keys must never be logged). */
const users = new Set();
/** Phone ciphertexts sent to the worker (must never be logged). */
const ciphertexts = [];

before(async () => {
  stack = await startStack();
  stacks.push(stack);
});
after(async () => {
  for (const s of stacks) await s.close();
});

async function loginAs(s, code) {
  users.add(code.split('.')[0]);
  return login(s, code);
}

function encrypt(s, opts) {
  const enc = s.sim.encryptPhone(opts);
  ciphertexts.push(enc.encryptedData);
  return enc;
}

function phone(s, token, body, extra = {}) {
  return call(s, 'POST', '/auth/phone', { body, headers: token ? bearer(token) : {}, ...extra });
}

function assertError(r, status, error) {
  assert.equal(r.status, status, `expected ${status} ${error}, got ${r.status} ${r.text}`);
  assert.ok(r.json, `error body must be JSON: ${r.text}`);
  assert.equal(r.json.error, error, r.text);
  assert.equal(typeof r.json.message, 'string', r.text);
  assert.match(r.headers.get('content-type') ?? '', /application\/json/);
}

function assertBound(r, { pure, cc = '86', openid }) {
  assert.equal(r.status, 200, r.text);
  const j = r.json;
  assert.equal(j.purePhoneNumber, pure);
  assert.equal(typeof j.phoneNumber, 'string');
  assert.ok(j.phoneNumber.includes(pure), j.phoneNumber);
  assert.equal(j.countryCode, cc);
  assert.equal(typeof j.access_token, 'string');
  assert.ok(j.access_token.split('.').length === 3, 'access_token is a JWT');
  assert.equal(j.token_type, 'Bearer');
  assert.equal(j.expires_in, 600);
  // Binding does not rotate the refresh token: the answer has none, and the
  // client keeps the one it holds (issue 16).
  assert.ok(!('refresh_token' in j), `no refresh_token in the answer: ${JSON.stringify(Object.keys(j))}`);
  assert.ok(!('refresh_expires_in' in j), `no refresh_expires_in in the answer: ${JSON.stringify(Object.keys(j))}`);
  if (openid) assert.equal(j.openid, openid);
  assert.equal(j.phone_bound, true);
}

function jwtPayload(jwt) {
  const parts = jwt.split('.');
  assert.equal(parts.length, 3, `not a JWT: ${jwt}`);
  return JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
}

const delta = (a, b) =>
  Object.fromEntries(
    ['stable_token', 'stable_token_force', 'getuserphonenumber', 'token_errors', 'code2session'].map((k) => [
      k,
      b[k] - a[k],
    ]),
  );
const lastGupn = (s) =>
  s.sim
    .stats()
    .lastRequests.filter((r) => r.path === GUPN)
    .at(-1);

// ---------------------------------------------------------------- legacy path

test('legacy encryptedData/iv binds the phone; tokens, headers, identity, session, later logins and KV carry it', async () => {
  const t1 = await loginAs(stack, 'alice.1');
  assert.equal(t1.phone_bound, false);
  const enc = encrypt(stack, { user: 'alice', phone: '13800138000' });
  const r = await phone(stack, t1.access_token, enc);
  assertBound(r, { pure: '13800138000', openid: t1.openid });
  assert.equal(r.json.phoneNumber, '13800138000');
  const bound = r.json;

  // A proxied request with the NEW access token carries the phone.
  const p = await call(stack, 'GET', '/api/me', { headers: bearer(bound.access_token) });
  assert.equal(p.status, 200, p.text);
  assert.equal(p.json.headers['x-wx-phone'], '13800138000');
  assert.equal(p.json.headers['x-wx-phone-country'], '86');
  assert.equal(p.json.headers['x-wx-openid'], t1.openid);
  const ident = p.json.headers['x-wx-identity'];
  assert.ok(ident, 'X-WX-Identity is sent (IDENTITY_KEY is set)');
  const claims = jwtPayload(ident);
  assert.equal(claims.sub, t1.openid);
  assert.equal(claims.phone, '13800138000');

  // GET /auth/session
  const sess = await call(stack, 'GET', '/auth/session', { headers: bearer(bound.access_token) });
  assert.equal(sess.status, 200, sess.text);
  assert.equal(sess.json.phone_bound, true);
  assert.equal(sess.json.openid, t1.openid);

  // A later login of the same user: phone_bound true, and the phone is proxied.
  const t2 = await loginAs(stack, 'alice.2');
  assert.equal(t2.openid, t1.openid);
  assert.equal(t2.phone_bound, true);
  const p2 = await call(stack, 'GET', '/api/later', { headers: bearer(t2.access_token) });
  assert.equal(p2.status, 200, p2.text);
  assert.equal(p2.json.headers['x-wx-phone'], '13800138000');
  assert.equal(p2.json.headers['x-wx-phone-country'], '86');
  assert.equal(jwtPayload(p2.json.headers['x-wx-identity']).phone, '13800138000');

  // The user record (kept by the user's authority) holds the phone.
  const rec = await stack.user(t1.openid);
  assert.ok(rec, 'user record exists');
  assert.equal(rec.phone?.purePhoneNumber, '13800138000', JSON.stringify(rec));
  assert.equal(rec.phone?.countryCode, '86', JSON.stringify(rec));
});

test('form-urlencoded body whose "+" became " " still binds (base64 repair)', async () => {
  const t = await loginAs(stack, 'formy.1');
  // Keep encrypting (random iv each time) until both fields contain '+', so
  // the repair is really exercised.
  let enc;
  for (let i = 0; i < 500; i++) {
    enc = stack.sim.encryptPhone({ user: 'formy', phone: '13600136000' });
    if (enc.encryptedData.includes('+') && enc.iv.includes('+')) break;
  }
  assert.ok(enc.encryptedData.includes('+') && enc.iv.includes('+'), 'found base64 with "+"');
  ciphertexts.push(enc.encryptedData);
  // What a broken client sends: '+' left raw, which a form decoder reads as ' '.
  const broken = (s) => encodeURIComponent(s).replace(/%2B/g, '+');
  const body = `encryptedData=${broken(enc.encryptedData)}&iv=${broken(enc.iv)}`;
  assert.ok(body.includes('+'));
  const r = await call(stack, 'POST', '/auth/phone', {
    body,
    headers: { ...bearer(t.access_token), 'content-type': 'application/x-www-form-urlencoded' },
  });
  assertBound(r, { pure: '13600136000', openid: t.openid });
});

test('form-urlencoded body, correctly encoded, binds too', async () => {
  const t = await loginAs(stack, 'formok.1');
  const enc = encrypt(stack, { user: 'formok', phone: '13500135000' });
  const r = await call(stack, 'POST', '/auth/phone', { form: enc, headers: bearer(t.access_token) });
  assertBound(r, { pure: '13500135000', openid: t.openid });
});

test('stale session_key (wx.login after getPhoneNumber) → 400 decrypt_failed telling to log in again', async () => {
  await loginAs(stack, 'stale.1');
  const old = encrypt(stack, { user: 'stale', phone: '13800138001' });
  const t2 = await loginAs(stack, 'stale.2'); // WeChat rotates the session_key
  const r = await phone(stack, t2.access_token, old);
  assertError(r, 400, 'decrypt_failed');
  assert.match(r.json.message, /log(ged)? ?in again/i);
  // Nothing bound.
  const rec = await stack.user(t2.openid);
  assert.equal(rec.phone, null);
  const s = await call(stack, 'GET', '/auth/session', { headers: bearer(t2.access_token) });
  assert.equal(s.json.phone_bound, false);
});

test('legacy data watermarked more than PHONE_DATA_MAX_AGE (600 s) ago → 400 invalid_request saying so; five such tries revoke the session', async () => {
  const t = await loginAs(stack, 'oldmark.1');
  const old = encrypt(stack, {
    user: 'oldmark',
    phone: '13800138009',
    timestamp: Math.floor(Date.now() / 1000) - 3600,
  });
  for (let i = 0; i < 4; i++) {
    const r = await phone(stack, t.access_token, old);
    assertError(r, 400, 'invalid_request');
    assert.match(r.json.message, /PHONE_DATA_MAX_AGE/);
  }
  const rec = await stack.user(t.openid);
  assert.equal(rec.phone, null, 'nothing bound');
  // Fresh data still binds before the fifth failure…
  const fresh = encrypt(stack, { user: 'oldmark', phone: '13800138009' });
  assertBound(await phone(stack, t.access_token, fresh), { pure: '13800138009', openid: t.openid });
  // …and the fifth stale attempt ends the session.
  assertError(await phone(stack, t.access_token, old), 400, 'invalid_request');
  const s = await call(stack, 'GET', '/auth/session', { headers: bearer(t.access_token) });
  assertError(s, 401, 'session_revoked');
});

test('PHONE_DATA_MAX_AGE is configurable', async () => {
  const s = await startStack({ vars: { PHONE_DATA_MAX_AGE: '60' } });
  stacks.push(s);
  const t = await loginAs(s, 'shortmark.1');
  const now = Math.floor(Date.now() / 1000);
  const recent = encrypt(s, { user: 'shortmark', phone: '13800138010', timestamp: now - 120 });
  assertError(await phone(s, t.access_token, recent), 400, 'invalid_request');
  const fresh = encrypt(s, { user: 'shortmark', phone: '13800138010', timestamp: now - 10 });
  assertBound(await phone(s, t.access_token, fresh), { pure: '13800138010', openid: t.openid });
});

test('legacy data with another appid in the watermark → 400 watermark_mismatch', async () => {
  const t = await loginAs(stack, 'foreign.1');
  const enc = encrypt(stack, { user: 'foreign', phone: '13800138002', appid: 'wx0000000000000000' });
  const r = await phone(stack, t.access_token, enc);
  assertError(r, 400, 'watermark_mismatch');
});

test('legacy with a foreign country code keeps it', async () => {
  const t = await loginAs(stack, 'intl.1');
  const enc = encrypt(stack, { user: 'intl', phone: '4155550123', countryCode: '1' });
  const r = await phone(stack, t.access_token, enc);
  assertBound(r, { pure: '4155550123', cc: '1', openid: t.openid });
  const p = await call(stack, 'GET', '/api/intl', { headers: bearer(r.json.access_token) });
  assert.equal(p.json.headers['x-wx-phone'], '4155550123');
  assert.equal(p.json.headers['x-wx-phone-country'], '1');
});

test('bad input → 400 invalid_request; no bearer → 401 unauthorized', async () => {
  const t = await loginAs(stack, 'badin.1');
  const enc = encrypt(stack, { user: 'badin', phone: '13800138003' });
  const tok = t.access_token;

  assertError(
    await phone(stack, tok, { encryptedData: enc.encryptedData, iv: '!!!not*base64!!!' }),
    400,
    'invalid_request',
  );
  // iv of 8 bytes, and of 32 bytes
  assertError(
    await phone(stack, tok, { encryptedData: enc.encryptedData, iv: Buffer.alloc(8, 1).toString('base64') }),
    400,
    'invalid_request',
  );
  assertError(
    await phone(stack, tok, { encryptedData: enc.encryptedData, iv: Buffer.alloc(32, 1).toString('base64') }),
    400,
    'invalid_request',
  );
  // encryptedData not base64 / not whole blocks
  assertError(await phone(stack, tok, { encryptedData: '***', iv: enc.iv }), 400, 'invalid_request');
  assertError(
    await phone(stack, tok, { encryptedData: Buffer.alloc(20, 1).toString('base64'), iv: enc.iv }),
    400,
    'invalid_request',
  );
  // only encryptedData, only iv
  assertError(await phone(stack, tok, { encryptedData: enc.encryptedData }), 400, 'invalid_request');
  assertError(await phone(stack, tok, { iv: enc.iv }), 400, 'invalid_request');
  // empty body, {} and not JSON
  assertError(await phone(stack, tok, ''), 400, 'invalid_request');
  assertError(await call(stack, 'POST', '/auth/phone', { headers: bearer(tok) }), 400, 'invalid_request');
  assertError(await phone(stack, tok, {}), 400, 'invalid_request');
  assertError(await phone(stack, tok, '{"encryptedData":'), 400, 'invalid_request');
  // empty code
  assertError(await phone(stack, tok, { code: '' }), 400, 'invalid_request');

  // no bearer
  assertError(await phone(stack, null, enc), 401, 'unauthorized');
  assertError(await phone(stack, null, { code: 'phone-13800138003' }), 401, 'unauthorized');

  // After all that, the valid data still binds (the session was not harmed).
  assertBound(await phone(stack, tok, enc), { pure: '13800138003', openid: t.openid });
});

test("the login's refresh token works after a binding and keeps the phone; method, size and session checks", async () => {
  const t = await loginAs(stack, 'judy.1');
  const enc = encrypt(stack, { user: 'judy', phone: '13800138004' });
  const b = await phone(stack, t.access_token, enc);
  assertBound(b, { pure: '13800138004', openid: t.openid });
  assert.equal(jwtPayload(b.json.access_token).phone, '13800138004', 'the new access token carries the phone');
  const r = await call(stack, 'POST', '/auth/refresh', { body: { refresh_token: t.refresh_token } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.phone_bound, true);
  const p = await call(stack, 'GET', '/api/judy', { headers: bearer(r.json.access_token) });
  assert.equal(p.json.headers['x-wx-phone'], '13800138004');

  assertError(
    await call(stack, 'GET', '/auth/phone', { headers: bearer(r.json.access_token) }),
    405,
    'method_not_allowed',
  );
  assertError(
    await phone(stack, r.json.access_token, { encryptedData: 'A'.repeat(17 * 1024), iv: enc.iv }),
    413,
    'payload_too_large',
  );
  assertError(await phone(stack, 'not.a.jwt', enc), 401, 'invalid_token');
  assertError(await phone(stack, t.refresh_token, enc), 401, 'invalid_token');

  const out = await call(stack, 'POST', '/auth/logout', { headers: bearer(r.json.access_token) });
  assert.equal(out.status, 204, out.text);
  assertError(await phone(stack, r.json.access_token, { code: 'phone-13800138005' }), 401, 'session_revoked');
});

// ---------------------------------------------------------------- current path

test('code path: one stable_token, access_token in the query, openid in the body; second binding reuses the token', async () => {
  const s0 = stack.sim.stats();
  const t = await loginAs(stack, 'carol.1');
  const r = await phone(stack, t.access_token, { code: 'phone-13900139000' });
  assertBound(r, { pure: '13900139000', openid: t.openid });
  const s1 = stack.sim.stats();
  const d1 = delta(s0, s1);
  assert.equal(d1.stable_token, 1, `stable_token calls: ${JSON.stringify(d1)}`);
  assert.equal(d1.getuserphonenumber, 1);
  assert.equal(d1.token_errors, 0);
  const req = lastGupn(stack);
  assert.equal(req.method, 'POST');
  assert.equal(typeof req.query.access_token, 'string');
  assert.ok(req.query.access_token.length > 20, 'access_token in the query');
  assert.equal(req.body.code, 'phone-13900139000');
  assert.equal(req.body.openid, t.openid);
  const st = s1.lastRequests.filter((x) => x.path === STABLE).at(-1);
  assert.equal(st.method, 'POST');
  assert.equal(st.body.grant_type, 'client_credential');
  assert.equal(st.body.force_refresh ?? false, false);

  // proxied with the new token
  const p = await call(stack, 'GET', '/api/carol', { headers: bearer(r.json.access_token) });
  assert.equal(p.json.headers['x-wx-phone'], '13900139000');

  // The cached token is in KV.
  assert.ok(await stack.kv.get('wx:stable_token'), 'wx:stable_token cached in KV');

  // Another user: the cached token is reused.
  const t2 = await loginAs(stack, 'dave.1');
  const r2 = await phone(stack, t2.access_token, { code: 'phone-13700137000' });
  assertBound(r2, { pure: '13700137000', openid: t2.openid });
  const d2 = delta(s1, stack.sim.stats());
  assert.equal(d2.stable_token, 0, `cached token reused: ${JSON.stringify(d2)}`);
  assert.equal(d2.getuserphonenumber, 1);
  const req2 = lastGupn(stack);
  assert.equal(req2.query.access_token, req.query.access_token);
  assert.equal(req2.body.openid, t2.openid);
});

test('code path: numeric countryCode works', async () => {
  const t = await loginAs(stack, 'erin.1');
  const r = await phone(stack, t.access_token, { code: 'phonenum-13100131000' });
  assertBound(r, { pure: '13100131000', cc: '86', openid: t.openid });
  assert.equal(typeof r.json.countryCode, 'string');
});

test('code path via form-urlencoded body', async () => {
  const t = await loginAs(stack, 'frank.1');
  const r = await call(stack, 'POST', '/auth/phone', {
    form: { code: 'phone-13200132000' },
    headers: bearer(t.access_token),
  });
  assertBound(r, { pure: '13200132000', openid: t.openid });
});

test('code path errors: foreign watermark, unknown code, reused code', async () => {
  const t = await loginAs(stack, 'gina.1');
  assertError(await phone(stack, t.access_token, { code: 'phoneforeign-13300133000' }), 400, 'watermark_mismatch');
  const nope = await phone(stack, t.access_token, { code: 'nope' });
  assertError(nope, 400, 'invalid_code');
  assert.equal(nope.json.wechat_errcode, 40029, 'WeChat caused it');
  // phone-13900139000 was used by carol above
  const reused = await phone(stack, t.access_token, { code: 'phone-13900139000' });
  assertError(reused, 400, 'invalid_code');
  assert.equal(reused.json.wechat_errcode, 40029);
  // a wx.login code is not a phone code
  assertError(await phone(stack, t.access_token, { code: 'gina.9' }), 400, 'invalid_code');
  // and a fresh one used twice by the same user
  assertBound(await phone(stack, t.access_token, { code: 'phone-13400134000' }), {
    pure: '13400134000',
    openid: t.openid,
  });
  assertError(await phone(stack, t.access_token, { code: 'phone-13400134000' }), 400, 'invalid_code');
  // none of these were a session problem
  const s = await call(stack, 'GET', '/auth/session', { headers: bearer(t.access_token) });
  assert.equal(s.status, 200, s.text);
});

test('WeChat refuses the cached token (40001) → the worker refetches once and retries', async () => {
  const t = await loginAs(stack, 'hank.1');
  const before = stack.sim.stats();
  const oldToken = lastGupn(stack)?.query.access_token;
  assert.ok(oldToken, 'an earlier binding used a token');
  stack.sim.invalidateAccessToken();
  const r = await phone(stack, t.access_token, { code: 'phone-13800138099' });
  assertBound(r, { pure: '13800138099', openid: t.openid });
  const d = delta(before, stack.sim.stats());
  console.log('# after invalidateAccessToken:', JSON.stringify(d));
  assert.equal(d.token_errors, 1, JSON.stringify(d));
  assert.equal(d.stable_token, 1, JSON.stringify(d));
  assert.equal(d.getuserphonenumber, 2, JSON.stringify(d));
  const req = lastGupn(stack);
  assert.notEqual(req.query.access_token, oldToken);
  // The new token is cached: the next binding does not fetch again.
  const t2 = await loginAs(stack, 'ivy.1');
  const mid = stack.sim.stats();
  assertBound(await phone(stack, t2.access_token, { code: 'phone-13800138098' }), { pure: '13800138098' });
  const d2 = delta(mid, stack.sim.stats());
  assert.equal(d2.stable_token, 0, JSON.stringify(d2));
  assert.equal(d2.token_errors, 0, JSON.stringify(d2));
});

// ---------------------------------------------------------------- concurrency

test('5 concurrent code bindings on a cold cache share one stable_token fetch', async () => {
  const s = await startStack();
  stacks.push(s);
  const names = ['c0', 'c1', 'c2', 'c3', 'c4'];
  const toks = [];
  for (const n of names) toks.push(await loginAs(s, `${n}.1`));
  const rs = await Promise.all(toks.map((t, i) => phone(s, t.access_token, { code: `phone-1580000000${i}` })));
  rs.forEach((r, i) => assertBound(r, { pure: `1580000000${i}`, openid: toks[i].openid }));
  const st = s.sim.stats();
  console.log(
    `# concurrency: stable_token calls for 5 concurrent bindings = ${st.stable_token} ` +
      `(force ${st.stable_token_force}), getuserphonenumber = ${st.getuserphonenumber}, token_errors = ${st.token_errors}`,
  );
  // One isolate (Miniflare): the requests share a single fetch.
  assert.equal(st.stable_token, 1, `stable_token calls: ${st.stable_token}`);
  assert.equal(st.getuserphonenumber, 5 + st.token_errors);
});

// ---------------------------------------------------- binding never ends a session

const refresh = (s, token) => call(s, 'POST', '/auth/refresh', { body: { refresh_token: token } });

test("two concurrent binds (a double tap), then a refresh with the login's refresh token → 200", async () => {
  const t = await loginAs(stack, 'tapper.1');
  // Phone codes are single use: each tap brings its own.
  const [a, b] = await Promise.all([
    phone(stack, t.access_token, { code: 'phone-13800138020' }),
    phone(stack, t.access_token, { code: 'phone-13800138021' }),
  ]);
  assertBound(a, { pure: '13800138020', openid: t.openid });
  assertBound(b, { pure: '13800138021', openid: t.openid });
  const r = await refresh(stack, t.refresh_token);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.phone_bound, true);
  // Exactly one rotation: the new token goes on.
  const r2 = await refresh(stack, r.json.refresh_token);
  assert.equal(r2.status, 200, r2.text);
});

test('a bind whose answer is thrown away, then a refresh after the 10 s grace window → 200', async () => {
  const t = await loginAs(stack, 'lost.1');
  const res = await fetch(stack.url + '/auth/phone', {
    method: 'POST',
    headers: { ...bearer(t.access_token), 'content-type': 'application/json' },
    body: JSON.stringify({ code: 'phone-13800138022' }),
  });
  assert.equal(res.status, 200);
  await res.body?.cancel(); // the answer is lost: its tokens are never read
  // Past the refresh grace (10 s, a constant): a token rotated away would now be reuse.
  await new Promise((r) => setTimeout(r, 11_000));
  const r = await refresh(stack, t.refresh_token);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.phone_bound, true);
  const p = await call(stack, 'GET', '/api/lost', { headers: bearer(r.json.access_token) });
  assert.equal(p.json.headers['x-wx-phone'], '13800138022');
});

// ---------------------------------------------------------------- secrets in logs

test('no log line carries a session_key, the WeChat access token or phone ciphertext', async () => {
  for (const s of stacks) {
    const logs = s.logs();
    console.log(`# worker log size: ${logs.length} chars`);
    const secrets = [];
    for (const u of users) {
      const k = s.sim.sessionKeyOf(u);
      if (k) secrets.push(['session_key of ' + u, k]);
    }
    for (const r of s.sim.stats().lastRequests) {
      if (r.query?.access_token) secrets.push(['access_token', r.query.access_token]);
    }
    const cached = await s.kv.get('wx:stable_token');
    if (cached) {
      const c = JSON.parse(cached);
      const v = typeof c.access_token === 'string' ? c.access_token : JSON.stringify(c.access_token);
      secrets.push(['cached access_token', v]);
    }
    for (const c of ciphertexts) secrets.push(['ciphertext', c], ['ciphertext head', c.slice(0, 32)]);
    assert.ok(secrets.length > 0);
    for (const [what, value] of secrets) {
      assert.ok(!logs.includes(value), `${what} appears in the logs`);
      // also URL-encoded / with '+' turned into space
      assert.ok(!logs.includes(encodeURIComponent(value)), `${what} (url-encoded) appears in the logs`);
    }
  }
});
