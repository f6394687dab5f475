// The worker's own endpoints (/auth/*): login, refresh, logout, session, and
// how access tokens are verified. Pins the public contract
// (shared/contract.md): statuses, `error` codes and bodies.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { startStack, call, bearer } from '../support/stack.mjs';

let stack;
before(async () => {
  stack = await startStack();
});
after(async () => {
  await stack?.close();
});

// ---------------------------------------------------------------- helpers

const LOGIN_KEYS = [
  'access_token',
  'expires_in',
  'openid',
  'phone_bound',
  'refresh_expires_in',
  'refresh_token',
  'token_type',
  'unionid',
];
const now = () => Math.floor(Date.now() / 1000);

/** Everything secret this file saw, checked against the logs at the end. */
const seen = { sessionKeys: new Set(), refreshTokens: new Set() };

/** The openid / unionid the simulator gives `user` (its own derivation). */
const idFor = (prefix, kind, user) =>
  prefix + createHash('sha256').update(`${kind}:${stack.appid}:${user}`).digest('base64url').slice(0, 27);
const openidOf = (user) => idFor('o', 'openid', user);
const unionidOf = (user) => idFor('u', 'unionid', user);
const userOf = (code) => code.split('.')[0];

function remember(r, code) {
  if (r.json?.refresh_token) seen.refreshTokens.add(r.json.refresh_token);
  const k = code && stack.sim.sessionKeyOf(userOf(code));
  if (k) seen.sessionKeys.add(k);
}

async function loginRaw(code, opts = {}) {
  const r = await call(stack, 'POST', '/auth/login', { body: { code }, ...opts });
  remember(r, code);
  return r;
}

async function login(code, opts) {
  const r = await loginRaw(code, opts);
  assert.equal(r.status, 200, r.text);
  return r.json;
}

async function refresh(token) {
  const r = await call(stack, 'POST', '/auth/refresh', { body: { refresh_token: token } });
  remember(r);
  return r;
}

/** Asserts an error response exactly as the contract's errors table says. */
function assertError(r, status, code, { wechat_errcode } = {}) {
  assert.equal(r.status, status, r.text);
  assert.match(r.headers.get('content-type') ?? '', /^application\/json/, 'error bodies are JSON');
  assert.ok(r.json && typeof r.json === 'object' && !Array.isArray(r.json), r.text);
  assert.equal(r.json.error, code, r.text);
  assert.equal(typeof r.json.message, 'string');
  assert.ok(r.json.message.length > 0);
  const allowed = new Set(['error', 'message', 'wechat_errcode']);
  for (const k of Object.keys(r.json)) assert.ok(allowed.has(k), `unexpected key ${k} in ${r.text}`);
  if (wechat_errcode === undefined) assert.ok(!('wechat_errcode' in r.json), r.text);
  else assert.equal(r.json.wechat_errcode, wechat_errcode, r.text);
}

/** Calls to code2Session that carried `code`. */
const simCallsFor = (code) =>
  stack.sim.stats().lastRequests.filter((q) => q.path === '/sns/jscode2session' && q.query.js_code === code).length;

const decode = (jwt) => {
  const [h, p] = jwt.split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url').toString('utf8')),
    payload: JSON.parse(Buffer.from(p, 'base64url').toString('utf8')),
  };
};
const b64json = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
function hs256(header, claims, secret = stack.tokenSecret) {
  const signing = `${b64json(header)}.${b64json(claims)}`;
  return `${signing}.${createHmac('sha256', secret).update(signing).digest('base64url')}`;
}
const ACCESS_HEADER = { alg: 'HS256', typ: 'at+jwt' };
function accessClaims(sub, sid, over = {}) {
  const t = now();
  return { iss: 'wx-edge', aud: stack.appid, sub, sid, token_use: 'access', iat: t, exp: t + 300, ...over };
}

async function sessionRecords() {
  const { keys } = await stack.kv.list({ prefix: 'session:' });
  const out = [];
  for (const { name } of keys) out.push({ name, value: JSON.parse(await stack.kv.get(name)) });
  return out;
}

// ------------------------------------------------------------------ login

test('login (JSON): 200 with exactly the contract shape, and a code2Session call with appid, js_code, grant_type', async () => {
  const r = await loginRaw('shape.1');
  assert.equal(r.status, 200, r.text);
  assert.match(r.headers.get('content-type'), /^application\/json/);
  assert.deepEqual(Object.keys(r.json).sort(), LOGIN_KEYS);
  assert.equal(r.json.token_type, 'Bearer');
  assert.equal(r.json.expires_in, 600);
  assert.equal(r.json.refresh_expires_in, 2592000);
  assert.equal(r.json.openid, openidOf('shape'));
  assert.equal(r.json.unionid, unionidOf('shape'));
  assert.equal(r.json.phone_bound, false);
  assert.equal(r.json.access_token.split('.').length, 3, 'the access token is a JWT');
  assert.equal(typeof r.json.refresh_token, 'string');
  assert.ok(r.json.refresh_token.length >= 32, 'the refresh token is long enough to be unguessable');

  const q = stack.sim
    .stats()
    .lastRequests.filter((x) => x.path === '/sns/jscode2session' && x.query.js_code === 'shape.1');
  assert.equal(q.length, 1);
  assert.equal(q[0].method, 'GET');
  assert.equal(q[0].query.appid, stack.appid);
  assert.equal(q[0].query.js_code, 'shape.1');
  assert.equal(q[0].query.grant_type, 'authorization_code');
  assert.equal(q[0].query.secret, '[secret]', 'the right AppSecret was sent');
});

test('login (form-urlencoded): 200 with the same shape', async () => {
  const r = await call(stack, 'POST', '/auth/login', { form: { code: 'formuser.1' } });
  remember(r, 'formuser.1');
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(Object.keys(r.json).sort(), LOGIN_KEYS);
  assert.equal(r.json.openid, openidOf('formuser'));
  assert.equal(r.json.token_type, 'Bearer');
  assert.equal(r.json.phone_bound, false);
});

test('login of a user WeChat sends no unionid for: no unionid key at all', async () => {
  const r = await loginRaw('nounion1.1');
  assert.equal(r.status, 200, r.text);
  assert.ok(!('unionid' in r.json), r.text);
  assert.deepEqual(
    Object.keys(r.json).sort(),
    LOGIN_KEYS.filter((k) => k !== 'unionid'),
  );
  assert.equal(r.json.openid, openidOf('nounion1'));
});

test('login: the response never carries the session_key nor the AppSecret; KV holds a replica without it', async () => {
  const r = await loginRaw('keeper.1');
  assert.equal(r.status, 200, r.text);
  const sk = stack.sim.sessionKeyOf('keeper');
  assert.ok(sk, 'the simulator issued a session_key');
  for (const form of [sk, Buffer.from(sk, 'base64').toString('hex'), Buffer.from(sk, 'base64').toString('base64url')]) {
    assert.ok(!r.text.includes(form), 'session_key leaked in the login response');
  }
  assert.ok(!r.text.includes(stack.appsecret), 'AppSecret leaked in the login response');
  // Nor inside the JWT payload (base64url-encoded in the text).
  assert.ok(!JSON.stringify(decode(r.json.access_token)).includes(sk));

  // KV holds the session's read replica, written before the answer, and
  // never the session_key (which stays in the user's authority).
  const mine = (await sessionRecords()).filter((s) => s.value.openid === openidOf('keeper'));
  assert.equal(mine.length, 1, 'one session for one login');
  assert.equal(mine[0].name, `session:${decode(r.json.access_token).payload.sid}`);
  assert.equal(mine[0].value.unionid, unionidOf('keeper'));
  assert.ok(!JSON.stringify(mine[0].value).includes(sk), 'session_key in KV');
  assert.ok(!('session_key' in mine[0].value));
  assert.equal((await stack.user(openidOf('keeper'))).live_sessions, 1);
});

test('login twice: a new session with the new session_key; user record counts logins, keeps first_login_at, records CF-Connecting-IP', async () => {
  const a = await login('twice.1', { headers: { 'CF-Connecting-IP': '203.0.113.7' } });
  const u1 = await stack.user(a.openid);
  assert.ok(u1, 'user record exists');
  assert.equal(u1.login_count, 1);
  assert.equal(u1.last_login_ip, '203.0.113.7');
  assert.equal(typeof u1.first_login_at, 'number');
  assert.equal(typeof u1.last_login_at, 'number');
  assert.ok(Math.abs(u1.first_login_at - now()) <= 5, 'first_login_at is Unix seconds, now');
  assert.ok(u1.last_login_at >= u1.first_login_at);
  const encUnderKey1 = stack.sim.encryptPhone({ user: 'twice', phone: '13800138011' });

  await new Promise((r) => setTimeout(r, 1100)); // a later second
  const b = await login('twice.2', { headers: { 'CF-Connecting-IP': '198.51.100.23' } });
  assert.equal(b.openid, a.openid);
  assert.notEqual(b.refresh_token, a.refresh_token);
  const u2 = await stack.user(a.openid);
  assert.equal(u2.login_count, 2);
  assert.equal(u2.first_login_at, u1.first_login_at, 'first_login_at never changes');
  assert.ok(u2.last_login_at > u1.last_login_at, 'last_login_at moves');
  assert.equal(u2.last_login_ip, '198.51.100.23');
  assert.equal(u2.live_sessions, 2);

  // Each session holds its own session_key: data sealed under the second
  // login's key opens only in the second session, and the reverse.
  const encUnderKey2 = stack.sim.encryptPhone({ user: 'twice', phone: '13800138012' });
  const bind = (t, enc) => call(stack, 'POST', '/auth/phone', { body: enc, headers: bearer(t.access_token) });
  assertError(await bind(a, encUnderKey2), 400, 'decrypt_failed');
  assertError(await bind(b, encUnderKey1), 400, 'decrypt_failed');
  assert.equal((await bind(b, encUnderKey2)).status, 200);
  const a2 = await login('twice.3');
  assert.equal(a2.phone_bound, true);
});

// ----------------------------------------------------------- login errors

test('login: invalid code → 400 invalid_code, wechat_errcode 40029', async () => {
  assertError(await loginRaw('invalid1.1'), 400, 'invalid_code', { wechat_errcode: 40029 });
  assert.equal(simCallsFor('invalid1.1'), 1, 'not retried');
});

test('login: a reused code → 400 invalid_code 40163, telling to call wx.login again', async () => {
  await login('reuse.1');
  const r = await loginRaw('reuse.1');
  assertError(r, 400, 'invalid_code', { wechat_errcode: 40163 });
  assert.match(r.json.message, /wx\.login/);
});

test('login: blocked user → 403 user_blocked 40226', async () => {
  assertError(await loginRaw('blocked1.1'), 403, 'user_blocked', { wechat_errcode: 40226 });
});

test('login: WeChat rate limit → 429 rate_limited 45011', async () => {
  assertError(await loginRaw('ratelimit1.1'), 429, 'rate_limited', { wechat_errcode: 45011 });
});

test('login: WeChat -1 once → retried once, 200 (2 calls)', async () => {
  const r = await loginRaw('busyonce1.1');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.openid, openidOf('busyonce1'));
  assert.equal(simCallsFor('busyonce1.1'), 2);
});

test('login: WeChat -1 twice → 502 wechat_unavailable -1 after exactly 2 calls', async () => {
  assertError(await loginRaw('busy1.1'), 502, 'wechat_unavailable', { wechat_errcode: -1 });
  assert.equal(simCallsFor('busy1.1'), 2);
});

test('login: HTTP 500 once → retried, 200', async () => {
  const r = await loginRaw('http500once1.1');
  assert.equal(r.status, 200, r.text);
  assert.equal(simCallsFor('http500once1.1'), 2);
});

test('login: HTTP 500 always → 502 wechat_unavailable, no upstream body', async () => {
  const r = await loginRaw('http5001.1');
  assertError(r, 502, 'wechat_unavailable');
  assert.ok(!/nginx|<html/i.test(r.text), 'the upstream body is not passed on');
  assert.equal(simCallsFor('http5001.1'), 2, 'one retry');
});

test('login: unparseable WeChat reply → 502 wechat_unavailable, no upstream body', async () => {
  const r = await loginRaw('garbage1.1');
  assertError(r, 502, 'wechat_unavailable');
  assert.ok(!r.text.includes('not json'), 'the upstream body is not passed on');
});

test('login: WeChat too slow → 502 wechat_unavailable after the timeout, not retried', async () => {
  const t0 = Date.now();
  const r = await loginRaw('slow1.1');
  const ms = Date.now() - t0;
  assertError(r, 502, 'wechat_unavailable');
  assert.ok(ms >= 1400 && ms <= 4000, `answered after ${ms} ms (WX_TIMEOUT_MS=1500)`);
  assert.equal(simCallsFor('slow1.1'), 1, 'a timeout is not retried');
});

test('login: malformed bodies → 400 invalid_request, WeChat not called', async () => {
  const before = stack.sim.stats().code2session;
  const cases = [
    ['missing code', { body: {} }],
    ['empty code', { body: { code: '' } }],
    ['code not a string', { body: { code: 123 } }],
    ['code null', { body: { code: null } }],
    ['non-JSON', { body: 'code=abc', headers: { 'content-type': 'application/json' } }],
    ['not JSON at all', { body: '{"code":' }],
    ['array body', { body: '["abc"]' }],
    ['JSON string body', { body: '"abc"' }],
    ['empty body', { body: '' }],
    ['no body', {}],
    ['form without code', { form: { other: 'x' } }],
    ['oversized code field', { body: { code: 'a'.repeat(300) } }],
  ];
  for (const [name, opts] of cases) {
    const r = await call(stack, 'POST', '/auth/login', opts);
    assert.equal(r.status, 400, `${name}: ${r.status} ${r.text}`);
    assertError(r, 400, 'invalid_request');
  }
  assert.equal(stack.sim.stats().code2session, before, 'no WeChat call for a malformed request');
});

test('login: body over 16 KiB → 413 payload_too_large (with and without Content-Length)', async () => {
  const big = JSON.stringify({ code: 'big.1', pad: 'x'.repeat(17 * 1024) });
  assertError(await call(stack, 'POST', '/auth/login', { body: big }), 413, 'payload_too_large');

  // Chunked, no Content-Length: the worker must count what it reads.
  const chunks = [Buffer.from('{"code":"big.2","pad":"'), Buffer.alloc(20 * 1024, 'x'), Buffer.from('"}')];
  const res = await fetch(stack.url + '/auth/login', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: new ReadableStream({
      pull(c) {
        const next = chunks.shift();
        if (next) c.enqueue(next);
        else c.close();
      },
    }),
    duplex: 'half',
  });
  const text = await res.text();
  assertError({ status: res.status, headers: res.headers, text, json: JSON.parse(text) }, 413, 'payload_too_large');

  // Just under the limit is fine (and the code itself then decides).
  const ok = JSON.stringify({ code: 'big.3', pad: 'x'.repeat(15 * 1024) });
  const r = await call(stack, 'POST', '/auth/login', { body: ok });
  remember(r, 'big.3');
  assert.equal(r.status, 200, r.text);
});

test('/auth/* routing: 405 with Allow for a wrong method, 404 for an unknown path; never proxied', async () => {
  const before = stack.origin.requests.length;
  const r = await call(stack, 'GET', '/auth/login');
  assertError(r, 405, 'method_not_allowed');
  assert.match(r.headers.get('allow') ?? '', /\bPOST\b/);

  for (const [method, p] of [
    ['PUT', '/auth/refresh'],
    ['GET', '/auth/logout'],
    ['DELETE', '/auth/phone'],
  ]) {
    const x = await call(stack, method, p);
    assertError(x, 405, 'method_not_allowed');
    assert.match(x.headers.get('allow') ?? '', /\bPOST\b/, `${method} ${p}`);
  }
  const s = await call(stack, 'POST', '/auth/session', { body: {} });
  assertError(s, 405, 'method_not_allowed');
  assert.match(s.headers.get('allow') ?? '', /\bGET\b/);

  assertError(await call(stack, 'GET', '/auth/nope'), 404, 'not_found');
  for (const [method, p] of [
    ['POST', '/auth/nope'],
    ['GET', '/auth'],
    ['GET', '/auth/'],
    ['POST', '/auth/login/extra'],
    ['GET', '/auth/nope?x=1'],
  ]) {
    assertError(await call(stack, method, p, method === 'POST' ? { body: {} } : {}), 404, 'not_found');
  }
  assert.equal(stack.origin.requests.length, before, '/auth/* never reaches the origin');
});

// ---------------------------------------------------------------- refresh

test('refresh: a new pair; the old token within the grace returns the SAME new token; a token two rotations back revokes the session', async () => {
  const l0 = await login('rot.1');
  const r1 = await refresh(l0.refresh_token);
  assert.equal(r1.status, 200, r1.text);
  assert.deepEqual(Object.keys(r1.json).sort(), LOGIN_KEYS);
  assert.equal(r1.json.token_type, 'Bearer');
  assert.equal(r1.json.expires_in, 600);
  assert.equal(r1.json.refresh_expires_in, 2592000);
  assert.equal(r1.json.openid, l0.openid);
  assert.equal(r1.json.unionid, l0.unionid);
  assert.equal(r1.json.phone_bound, false);
  assert.notEqual(r1.json.refresh_token, l0.refresh_token);
  assert.equal(decode(r1.json.access_token).payload.sid, decode(l0.access_token).payload.sid, 'same session');
  // The new access token works.
  assert.equal((await call(stack, 'GET', '/auth/session', { headers: bearer(r1.json.access_token) })).status, 200);

  // Concurrent refresh (same old token, within 30 s): the same new refresh token.
  const again = await refresh(l0.refresh_token);
  assert.equal(again.status, 200, again.text);
  assert.equal(again.json.refresh_token, r1.json.refresh_token);

  const r2 = await refresh(r1.json.refresh_token);
  assert.equal(r2.status, 200, r2.text);
  assert.notEqual(r2.json.refresh_token, r1.json.refresh_token);
  assert.notEqual(r2.json.refresh_token, l0.refresh_token);

  // Two rotations back: reuse → the whole session is revoked.
  assertError(await refresh(l0.refresh_token), 401, 'refresh_reused');
  assertError(await refresh(r2.json.refresh_token), 401, 'invalid_refresh_token');
  for (const t of [l0.access_token, r1.json.access_token, r2.json.access_token]) {
    assertError(await call(stack, 'GET', '/api/me', { headers: bearer(t) }), 401, 'session_revoked');
  }
  assertError(
    await call(stack, 'GET', '/auth/session', { headers: bearer(r2.json.access_token) }),
    401,
    'session_revoked',
  );
});

test('refresh: the previous token after the 10 s grace window → 401 refresh_reused, session revoked', async () => {
  const l0 = await login('lategrace.1');
  const r1 = await refresh(l0.refresh_token);
  assert.equal(r1.status, 200, r1.text);
  // Within the grace: the same pair.
  const same = await refresh(l0.refresh_token);
  assert.equal(same.json.refresh_token, r1.json.refresh_token);
  await new Promise((r) => setTimeout(r, 11_000));
  assertError(await refresh(l0.refresh_token), 401, 'refresh_reused');
  assertError(await refresh(r1.json.refresh_token), 401, 'invalid_refresh_token');
  assertError(await call(stack, 'GET', '/api/me', { headers: bearer(r1.json.access_token) }), 401, 'session_revoked');
});

test('refresh: garbage or unknown tokens → 401 invalid_refresh_token; a missing field → 400 invalid_request', async () => {
  const l = await login('refgarbage.1');
  const [user, sid, secret, tag] = l.refresh_token.split('.');
  const unknown = `${user}.${randomBytes(16).toString('base64url')}.${randomBytes(32).toString('base64url')}.${tag}`;
  // The right tag (it covers the user and the session), the wrong secret.
  const wrongSecret = `${user}.${sid}.${randomBytes(32).toString('base64url')}.${tag}`;
  const otherUser = `${Buffer.from('oSomeoneElse').toString('base64url')}.${sid}.${secret}.${tag}`;
  const oldFormat = `${sid}.${secret}`;
  const untagged = `${user}.${sid}.${secret}`;
  for (const tok of [
    'garbage',
    'a.b',
    unknown,
    wrongSecret,
    otherUser,
    oldFormat,
    untagged,
    l.access_token,
    'x'.repeat(400),
  ]) {
    assertError(await refresh(tok), 401, 'invalid_refresh_token');
  }
  // A wrong guess did not hurt the real session.
  assert.equal((await refresh(l.refresh_token)).status, 200);

  for (const body of [
    {},
    { refresh_token: '' },
    { refresh_token: null },
    { refresh_token: 42 },
    { token: l.refresh_token },
  ]) {
    assertError(await call(stack, 'POST', '/auth/refresh', { body }), 400, 'invalid_request');
  }
  assertError(await call(stack, 'POST', '/auth/refresh', { body: 'not json' }), 400, 'invalid_request');
  assertError(await call(stack, 'POST', '/auth/refresh', { body: '' }), 400, 'invalid_request');
});

test('refresh: a body over 16 KiB → 413 payload_too_large', async () => {
  const big = JSON.stringify({ refresh_token: 'x.y', pad: 'x'.repeat(17 * 1024) });
  assertError(await call(stack, 'POST', '/auth/refresh', { body: big }), 413, 'payload_too_large');
});

test('refresh: 10 truly concurrent refreshes of one token all get the same new pair, and it keeps working', async () => {
  for (let round = 0; round < 15; round++) {
    const l = await login(`conc.${round}`);
    const rs = await Promise.all(Array.from({ length: 10 }, () => refresh(l.refresh_token)));
    for (const r of rs) assert.equal(r.status, 200, r.text);
    const tokens = new Set(rs.map((r) => r.json.refresh_token));
    assert.equal(tokens.size, 1, `round ${round}: ${tokens.size} different refresh tokens handed out`);
    const access = new Set(rs.map((r) => r.json.access_token));
    assert.equal(access.size, 1, `round ${round}: ${access.size} different access tokens handed out`);
    const next = await refresh(rs[0].json.refresh_token);
    assert.equal(next.status, 200, next.text);
  }
});

// ----------------------------------------------------------------- logout

test('logout: 204, then the refresh token, the access token and /auth/session all get 401', async () => {
  const l = await login('bye.1');
  const r = await call(stack, 'POST', '/auth/logout', { headers: bearer(l.access_token) });
  assert.equal(r.status, 204, r.text);
  assert.equal(r.text, '');
  assert.equal(r.headers.get('cache-control'), 'no-store');
  assert.equal(r.headers.get('content-type'), null);
  assertError(await refresh(l.refresh_token), 401, 'invalid_refresh_token');
  assertError(await call(stack, 'GET', '/api/orders', { headers: bearer(l.access_token) }), 401, 'session_revoked');
  const s = await call(stack, 'GET', '/auth/session', { headers: bearer(l.access_token) });
  assert.equal(s.status, 401, s.text);
  assertError(s, 401, 'session_revoked');
  // The session's replica is gone from KV.
  assert.equal(await stack.kv.get(`session:${decode(l.access_token).payload.sid}`), null);
});

test('logout ends only its own session', async () => {
  const a = await login('two.1');
  const b = await login('two.2');
  assert.equal((await call(stack, 'POST', '/auth/logout', { headers: bearer(a.access_token) })).status, 204);
  assert.equal((await call(stack, 'GET', '/auth/session', { headers: bearer(b.access_token) })).status, 200);
  assert.equal((await refresh(b.refresh_token)).status, 200);
});

test('logout: no header → 401 unauthorized; a bad token → 401 invalid_token', async () => {
  assertError(await call(stack, 'POST', '/auth/logout'), 401, 'unauthorized');
  assertError(await call(stack, 'POST', '/auth/logout', { headers: bearer('not.a.jwt') }), 401, 'invalid_token');
  assertError(await call(stack, 'POST', '/auth/logout', { headers: bearer('garbage') }), 401, 'invalid_token');
});

// ---------------------------------------------------------------- session

test('session: 200 {openid, unionid, phone_bound, expires_at, session_expires_at} in Unix seconds', async () => {
  const l = await login('sess.1');
  const r = await call(stack, 'GET', '/auth/session', { headers: bearer(l.access_token) });
  assert.equal(r.status, 200, r.text);
  assert.match(r.headers.get('content-type'), /^application\/json/);
  assert.deepEqual(Object.keys(r.json).sort(), [
    'expires_at',
    'openid',
    'phone_bound',
    'session_expires_at',
    'unionid',
  ]);
  assert.equal(r.json.openid, openidOf('sess'));
  assert.equal(r.json.unionid, unionidOf('sess'));
  assert.equal(r.json.phone_bound, false);
  assert.ok(Number.isInteger(r.json.expires_at) && Number.isInteger(r.json.session_expires_at));
  const t = now();
  assert.ok(Math.abs(r.json.expires_at - (t + 600)) <= 5, `expires_at ${r.json.expires_at} vs now ${t}`);
  assert.ok(
    Math.abs(r.json.session_expires_at - (t + 2592000)) <= 5,
    `session_expires_at ${r.json.session_expires_at}`,
  );
  assert.equal(r.json.expires_at, decode(l.access_token).payload.exp);
  assert.ok(!r.text.includes(stack.sim.sessionKeyOf('sess')), 'no session_key');

  const n = await login('nounion2.1');
  const rn = await call(stack, 'GET', '/auth/session', { headers: bearer(n.access_token) });
  assert.equal(rn.status, 200, rn.text);
  assert.ok(!('unionid' in rn.json), rn.text);

  assertError(await call(stack, 'GET', '/auth/session'), 401, 'unauthorized');
  assertError(await call(stack, 'GET', '/auth/session', { headers: bearer('nope') }), 401, 'invalid_token');
});

// ----------------------------------------------------------------- tokens

test('tokens: a crafted token accepted proves the crafting; tampered, alg none, wrong typ, no iat, other secret → invalid_token; expired → token_expired', async () => {
  const l = await login('tok.1');
  const { header, payload } = decode(l.access_token);
  assert.equal(header.alg, 'HS256');
  assert.equal(header.typ, 'at+jwt');
  assert.equal(payload.iss, 'wx-edge');
  assert.equal(payload.aud, stack.appid);
  assert.equal(payload.sub, l.openid);
  assert.equal(payload.token_use, 'access');
  assert.equal(payload.exp - payload.iat, 600);
  const { sub, sid } = payload;

  const session = (tok) => call(stack, 'GET', '/auth/session', { headers: bearer(tok) });
  const proxy = (tok) => call(stack, 'GET', '/api/secret', { headers: bearer(tok) });

  // The same recipe with a future exp is accepted: the negative cases below differ only as named.
  const valid = hs256(ACCESS_HEADER, accessClaims(sub, sid));
  const ok = await session(valid);
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.json.openid, l.openid);

  const [h, p, s] = l.access_token.split('.');
  const cases = {
    'tampered payload (sub changed)': `${h}.${b64json({ ...payload, sub: openidOf('someoneelse') })}.${s}`,
    'tampered payload (exp extended)': `${h}.${b64json({ ...payload, exp: payload.exp + 86400 })}.${s}`,
    'signature stripped': `${h}.${p}.`,
    'alg none': `${b64json({ alg: 'none', typ: 'at+jwt' })}.${b64json(accessClaims(sub, sid))}.`,
    'alg none, signature kept': `${b64json({ alg: 'none', typ: 'at+jwt' })}.${p}.${s}`,
    "typ 'JWT' (right secret)": hs256({ alg: 'HS256', typ: 'JWT' }, accessClaims(sub, sid)),
    'no typ (right secret)': hs256({ alg: 'HS256' }, accessClaims(sub, sid)),
    'no iat (right secret)': hs256(ACCESS_HEADER, (({ iat, ...c }) => c)(accessClaims(sub, sid))),
    'no exp (right secret)': hs256(ACCESS_HEADER, (({ exp, ...c }) => c)(accessClaims(sub, sid))),
    'another secret': hs256(ACCESS_HEADER, accessClaims(sub, sid), randomBytes(48).toString('base64')),
    'another appid as aud': hs256(ACCESS_HEADER, accessClaims(sub, sid, { aud: 'wx0000000000000000' })),
    'another issuer': hs256(ACCESS_HEADER, accessClaims(sub, sid, { iss: 'someone-else' })),
    'token_use not access': hs256(ACCESS_HEADER, accessClaims(sub, sid, { token_use: 'identity' })),
    malformed: 'abc.def',
    'not base64': '!!!.???.###',
  };
  for (const [name, tok] of Object.entries(cases)) {
    const r = await session(tok);
    assert.equal(r.status, 401, `${name}: ${r.text}`);
    assert.equal(r.json?.error, 'invalid_token', `${name}: ${r.text}`);
    assertError(r, 401, 'invalid_token');
    assertError(await proxy(tok), 401, 'invalid_token');
  }

  const expired = hs256(ACCESS_HEADER, accessClaims(sub, sid, { iat: now() - 1200, exp: now() - 600 }));
  assertError(await session(expired), 401, 'token_expired');
  assertError(await proxy(expired), 401, 'token_expired');
});

test('tokens: an X-WX-Identity assertion used as a bearer token → 401 invalid_token', async () => {
  const l = await login('assert.1');
  const r = await call(stack, 'GET', '/api/whoami', { headers: bearer(l.access_token) });
  assert.equal(r.status, 200, r.text);
  const assertion = r.json.headers['x-wx-identity'];
  assert.ok(assertion, 'the origin received an X-WX-Identity');
  assertError(await call(stack, 'GET', '/auth/session', { headers: bearer(assertion) }), 401, 'invalid_token');
  assertError(await call(stack, 'GET', '/api/whoami', { headers: bearer(assertion) }), 401, 'invalid_token');
  assertError(await call(stack, 'POST', '/auth/logout', { headers: bearer(assertion) }), 401, 'invalid_token');
});

// ------------------------------------------------------------------- logs

test('no /auth/* request ever reached the origin', () => {
  const leaked = stack.origin.requests.filter((q) => q.path === '/auth' || q.path.startsWith('/auth/'));
  assert.deepEqual(leaked, []);
});

test('logs: no session_key, AppSecret, TOKEN_SECRET, IDENTITY_KEY or refresh token, after everything above', async () => {
  await new Promise((r) => setTimeout(r, 200)); // let workerd flush its stdio
  const logs = stack.logs();
  assert.ok(seen.sessionKeys.size >= 10, `collected ${seen.sessionKeys.size} session keys`);
  assert.ok(seen.refreshTokens.size >= 10, `collected ${seen.refreshTokens.size} refresh tokens`);
  for (const k of seen.sessionKeys) assert.ok(!logs.includes(k), 'a session_key is in the logs');
  for (const t of seen.refreshTokens) {
    assert.ok(!logs.includes(t), 'a refresh token is in the logs');
    assert.ok(!logs.includes(t.split('.')[2]), 'a refresh token secret is in the logs');
  }
  assert.ok(!logs.includes(stack.appsecret), 'the AppSecret is in the logs');
  assert.ok(!logs.includes(stack.tokenSecret), 'TOKEN_SECRET is in the logs');
  assert.ok(!logs.includes(stack.refreshSecret), 'REFRESH_SECRET is in the logs');
  assert.ok(!logs.includes(stack.identityKey), 'IDENTITY_KEY is in the logs');
  // The log is not empty: WeChat failures are there, as JSON event lines,
  // by code only.
  assert.match(logs, /"event":"login","outcome":"error","code":"invalid_code","status":400,"wechat_errcode":40029/);
  assert.match(logs, /"event":"login","outcome":"error","code":"wechat_unavailable","status":502,"wechat_errcode":-1/);
  assert.ok(!/js_code|secret=/.test(logs), 'a WeChat request URL is in the logs');
});
