// End-to-end tests of the client against the REAL worker (build/index.js in
// workerd), the WeChat simulator and the echo origin, started by
// tests/support/stack.mjs. The fake wx does real HTTP with fetch.
//
// Skipped, with the reason in the test output, while tests/support/stack.mjs
// or build/index.js does not exist; they run as soon as both do.
//
// Run: node --test 'client/test/*.test.mjs'   (or just this file)

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';

import { platform } from './support/platform.mjs';

// The fake wx unless another runtime was installed (support/platform.mjs).
const { createAuth, AuthError, create: createFakeWx } = platform;

const STACK = new URL('../../tests/support/stack.mjs', import.meta.url);
const BUILD = new URL('../../build/index.js', import.meta.url);

let skip = false;
if (!existsSync(STACK)) {
  skip = 'e2e skipped: tests/support/stack.mjs does not exist yet';
} else if (!existsSync(BUILD)) {
  skip = 'e2e skipped: build/index.js is missing (build the worker first: npm run build)';
}
if (skip) {
  console.error(skip);
  // A skipped test (not just a skipped suite), so the summary counts it.
  test('e2e prerequisites: tests/support/stack.mjs and build/index.js', { skip }, () => {});
}

/** A controllable clock, in ms, starting at the real time (the worker's clock is real). */
function clock() {
  const c = () => Date.now() + c.offset;
  c.offset = 0;
  c.advance = (seconds) => {
    c.offset += seconds * 1000;
  };
  return c;
}

async function rejectsWith(promise, code, check) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof AuthError, `expected AuthError, got ${e && e.stack}`);
    assert.equal(e.code, code, `code: ${e.message}`);
    if (check) check(e);
    return true;
  });
}

/** Flip one character of the JWT's signature: well-formed, badly signed. */
function tamper(jwt) {
  const last = jwt.at(-2) === 'A' ? 'B' : 'A';
  return `${jwt.slice(0, -2)}${last}${jwt.at(-1)}`;
}

describe(`e2e: client against the real worker (${platform.name})`, { skip }, () => {
  let stack;

  before(async () => {
    const { startStack } = await import(STACK.href);
    stack = await startStack({ vars: { ACCESS_TOKEN_TTL: '60', ...platform.stackVars } });
  });

  after(async () => {
    if (stack) await stack.close();
  });

  /** A client for one WeChat user (codes `${user}.N`, each single-use). */
  function client(user, options = {}) {
    const wx = options.wx || createFakeWx({ user });
    const now = options.now || clock();
    const auth = createAuth({ baseUrl: stack.url, api: wx, now });
    return { wx, now, auth };
  }

  /** A raw call to the worker, outside the client. */
  async function raw(method, path, { token, json } = {}) {
    const headers = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (json) headers['content-type'] = 'application/json';
    const res = await fetch(stack.url + path, { method, headers, body: json ? JSON.stringify(json) : undefined });
    const text = await res.text();
    let body = null;
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
    return { status: res.status, body };
  }

  test('first login: wx.login → /auth/login, tokens stored', async () => {
    const { wx, auth, now } = client('alice');
    const before = now();
    const t = await auth.login();
    assert.equal(wx.logins, 1);
    assert.equal(t.token_type, 'Bearer');
    assert.equal(t.access_token.split('.').length, 3, 'a JWT');
    assert.equal(t.expires_in, 60);
    assert.ok(t.expires_at >= before + 60_000 && t.expires_at <= now() + 60_000);
    assert.equal(typeof t.refresh_token, 'string');
    assert.equal(typeof t.openid, 'string');
    assert.equal(t.phone_bound, false);
    assert.deepEqual(wx.storage.get('wx-edge.auth'), { ...t });
    assert.equal(auth.isLoggedIn(), true);
    // A restart reads the stored tokens.
    const again = createAuth({ baseUrl: stack.url, api: wx, now });
    assert.equal(again.tokens().access_token, t.access_token);
  });

  test('request through the proxy: identity headers added, Authorization not passed on', async () => {
    const { auth } = client('alice');
    const res = await auth.request({ url: '/api/orders', method: 'GET', data: { page: 2 } });
    assert.equal(res.statusCode, 200);
    const echo = res.data;
    assert.equal(echo.method, 'GET');
    assert.ok(echo.path.endsWith('/api/orders'), echo.path);
    assert.equal(echo.query, 'page=2');
    assert.equal(echo.headers['x-wx-openid'], auth.tokens().openid);
    assert.equal(echo.headers['x-wx-appid'], stack.appid);
    assert.equal(echo.headers.authorization, undefined);
    assert.equal(typeof res.header, 'object');

    const post = await auth.request({ url: '/api/orders', method: 'POST', data: { item: 42 } });
    assert.equal(post.statusCode, 200);
    assert.deepEqual(JSON.parse(post.data.body), { item: 42 });
    assert.ok(stack.origin.requests.length >= 2);

    // Origin statuses resolve as they are.
    const r404 = await auth.request({ url: '/api/status/404' });
    assert.equal(r404.statusCode, 404);
    const r500 = await auth.request({ url: '/api/status/500' });
    assert.equal(r500.statusCode, 500);
  });

  test('expired by the clock: one /auth/refresh, no new login, new tokens', async () => {
    const { wx, auth, now } = client('bob');
    const first = await auth.login();
    now.advance(61);
    const res = await auth.request({ url: '/api/me' });
    assert.equal(res.statusCode, 200);
    assert.equal(wx.count('/auth/refresh'), 1);
    assert.equal(wx.logins, 1);
    const t = auth.tokens();
    // (The access JWT may be byte-identical when minted in the same second for
    // the same session; the refresh token always rotates.)
    assert.notEqual(t.refresh_token, first.refresh_token);
    assert.ok(t.expires_at >= first.expires_at + 61_000, 'expiry tracked from the refresh');
    assert.equal(res.data.headers['x-wx-openid'], first.openid);
  });

  test('a corrupted stored access token: 401 invalid_token → refresh → retry', async () => {
    const { wx, auth: setupAuth, now } = client('carol');
    await setupAuth.login();
    const stored = wx.storage.get('wx-edge.auth');
    wx.storage.set('wx-edge.auth', { ...stored, access_token: tamper(stored.access_token) });
    const auth = createAuth({ baseUrl: stack.url, api: wx, now });
    const res = await auth.request({ url: '/api/after-tamper' });
    assert.equal(res.statusCode, 200);
    assert.equal(wx.count('/auth/refresh'), 1);
    assert.equal(wx.count('/api/after-tamper'), 2, 'first try + one retry');
    assert.equal(wx.logins, 1);
  });

  test('5 concurrent requests with an expired token share exactly one refresh', async () => {
    const { wx, auth, now } = client('dan');
    await auth.login();
    now.advance(120);
    const results = await Promise.all([1, 2, 3, 4, 5].map((i) => auth.request({ url: `/api/batch/${i}` })));
    for (const r of results) assert.equal(r.statusCode, 200);
    assert.equal(wx.count('/auth/refresh'), 1);
    assert.equal(wx.logins, 1);
  });

  test('5 concurrent requests meeting 401 (tampered token) share exactly one refresh', async () => {
    const { wx, auth: setupAuth, now } = client('dana');
    await setupAuth.login();
    const stored = wx.storage.get('wx-edge.auth');
    wx.storage.set('wx-edge.auth', { ...stored, access_token: tamper(stored.access_token) });
    const auth = createAuth({ baseUrl: stack.url, api: wx, now });
    const results = await Promise.all([1, 2, 3, 4, 5].map((i) => auth.request({ url: `/api/batch401/${i}` })));
    for (const r of results) assert.equal(r.statusCode, 200);
    assert.equal(wx.count('/auth/refresh'), 1);
    assert.equal(wx.logins, 1);
  });

  test('dead refresh token (session logged out elsewhere) → a fresh wx.login', async () => {
    const { wx, auth, now } = client('erin');
    const first = await auth.login();
    const out = await raw('POST', '/auth/logout', { token: first.access_token });
    assert.equal(out.status, 204);
    now.advance(61);
    const res = await auth.request({ url: '/api/after-revoke' });
    assert.equal(res.statusCode, 200);
    assert.equal(wx.count('/auth/refresh'), 1);
    assert.equal(wx.logins, 2);
    assert.notEqual(auth.tokens().refresh_token, first.refresh_token);
  });

  test('401 session_revoked on a live access token → refresh fails → new login → retry', async () => {
    const { wx, auth } = client('fay');
    const first = await auth.login();
    await raw('POST', '/auth/logout', { token: first.access_token });
    const res = await auth.request({ url: '/api/revoked' });
    assert.equal(res.statusCode, 200);
    assert.equal(wx.count('/api/revoked'), 2);
    assert.equal(wx.count('/auth/refresh'), 1);
    assert.equal(wx.logins, 2);
    assert.equal(res.data.headers['x-wx-openid'], first.openid, 'same WeChat user, new session');
  });

  test('bindPhone, current path: {code} binds the phone, a new access token, the refresh token kept, x-wx-phone on the proxy', async () => {
    const { wx, auth } = client('gus');
    const before = await auth.login();
    const out = await auth.bindPhone({ code: 'phone-13800138000', errMsg: 'getPhoneNumber:ok' });
    assert.equal(out.phoneNumber, '13800138000');
    assert.equal(out.purePhoneNumber, '13800138000');
    assert.equal(out.countryCode, '86');
    const t = auth.tokens();
    assert.equal(t.phone_bound, true);
    assert.notEqual(t.access_token, before.access_token);
    assert.equal(t.refresh_token, before.refresh_token, 'binding does not rotate the refresh token');
    assert.equal(wx.storage.get('wx-edge.auth').access_token, t.access_token);
    const res = await auth.request({ url: '/api/profile' });
    assert.equal(res.data.headers['x-wx-phone'], '13800138000');
    const session = await auth.getSession();
    assert.equal(session.phone_bound, true);
    assert.equal(session.openid, t.openid);
  });

  test('bindPhone, legacy path: {encryptedData, iv} for the current session, no wx.login', async () => {
    const { wx, auth } = client('hal');
    await auth.login();
    const enc = stack.sim.encryptPhone({ user: 'hal', phone: '13900139000' });
    const out = await auth.bindPhone({ ...enc, errMsg: 'getPhoneNumber:ok' });
    assert.equal(out.phoneNumber, '13900139000');
    assert.equal(wx.logins, 1);
    const res = await auth.request({ url: '/api/profile' });
    assert.equal(res.data.headers['x-wx-phone'], '13900139000');
  });

  test('bindPhone, legacy path after a new wx.login: decrypt_failed with the worker message', async () => {
    const { auth } = client('ivy');
    await auth.login();
    const enc = stack.sim.encryptPhone({ user: 'ivy', phone: '13700137000' });
    await auth.login(); // the pitfall: rotates the session_key
    await rejectsWith(auth.bindPhone(enc), 'decrypt_failed', (e) => {
      assert.equal(e.statusCode, 400);
      assert.match(e.message, /log in again/);
    });
  });

  test('bindPhone: a denied prompt rejects phone_denied', async () => {
    const { wx, auth } = client('jon');
    await auth.login();
    await rejectsWith(auth.bindPhone({ errMsg: 'getPhoneNumber:fail user deny' }), 'phone_denied');
    assert.equal(wx.count('/auth/phone'), 0);
  });

  test('login errors from WeChat carry the code and wechatErrcode', async () => {
    await rejectsWith(client('invalid').auth.login(), 'invalid_code', (e) => {
      assert.equal(e.statusCode, 400);
      assert.equal(e.wechatErrcode, 40029);
    });
    await rejectsWith(client('blocked').auth.login(), 'user_blocked', (e) => {
      assert.equal(e.statusCode, 403);
      assert.equal(e.wechatErrcode, 40226);
    });
  });

  test('logout: session deleted at the worker, storage cleared', async () => {
    const { wx, auth } = client('kim');
    const t = await auth.login();
    await auth.logout();
    assert.equal(wx.count('/auth/logout'), 1);
    assert.equal(wx.storage.has('wx-edge.auth'), false);
    assert.equal(auth.isLoggedIn(), false);
    const session = await raw('GET', '/auth/session', { token: t.access_token });
    assert.equal(session.status, 401);
    assert.equal(session.body.error, 'session_revoked');
    const refreshed = await raw('POST', '/auth/refresh', { json: { refresh_token: t.refresh_token } });
    assert.equal(refreshed.status, 401);
    // Logging out again is harmless.
    await auth.logout();
  });

  test('logout the worker never received: kept pending, the app told; a login and a retry finish it', async () => {
    let offline = true;
    const wx = createFakeWx({
      user: 'lee',
      failRequest: (o) => (offline && o.url.endsWith('/auth/logout') ? 'timeout' : null),
    });
    const { auth } = client('lee', { wx });
    const t = await auth.login();
    await rejectsWith(auth.logout(), 'logout_pending', (e) => assert.equal(e.cause.code, 'network_error'));
    assert.equal(auth.isLoggedIn(), false);
    assert.equal(wx.storage.has('wx-edge.auth'), false);
    assert.equal(wx.storage.get('wx-edge.auth.logout')[0].access_token, t.access_token);
    assert.equal((await raw('GET', '/auth/session', { token: t.access_token })).status, 200, 'still live');

    // A new login keeps it; once the worker is reachable, the login retries it.
    offline = false;
    const t2 = await auth.login();
    for (let i = 0; i < 100 && auth.hasPendingLogout(); i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(auth.hasPendingLogout(), false);
    const old = await raw('GET', '/auth/session', { token: t.access_token });
    assert.equal(old.status, 401);
    assert.equal(old.body.error, 'session_revoked');
    assert.equal((await raw('GET', '/auth/session', { token: t2.access_token })).status, 200, 'the new one lives');
    assert.equal(wx.storage.has('wx-edge.auth.logout'), false);
  });

  test('a pending logout whose access token expired refreshes first, then the worker confirms', async () => {
    let offline = true;
    const wx = createFakeWx({
      user: 'lin',
      failRequest: (o) => (offline && o.url.endsWith('/auth/logout') ? 'timeout' : null),
    });
    const { auth, now } = client('lin', { wx });
    const t = await auth.login();
    await rejectsWith(auth.logout(), 'logout_pending');
    offline = false;
    now.advance(120); // past the 60 s access token
    await auth.logout();
    assert.equal(wx.count('/auth/refresh'), 1);
    assert.equal(auth.hasPendingLogout(), false);
    const refreshed = await raw('POST', '/auth/refresh', { json: { refresh_token: t.refresh_token } });
    assert.equal(refreshed.status, 401, 'the session is gone at the worker');
  });
});
