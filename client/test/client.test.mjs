// Unit tests of the mini-program client against an in-process fake worker
// (test/support/fake-worker.mjs) and a fake wx whose request does real HTTP.
//
// Run: node --test 'client/test/*.test.mjs'

import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';

import { createAuth, AuthError, DEFAULT_STORAGE_KEY } from '../index.mjs';
import defaultExport from '../index.mjs';
import { createFakeWx } from './support/fake-wx.mjs';
import { startFakeWorker } from './support/fake-worker.mjs';

const require = createRequire(import.meta.url);

let worker;
before(async () => {
  worker = await startFakeWorker();
});
after(async () => {
  await worker.close();
});
beforeEach(() => {
  worker.resetCounts();
  worker.alwaysExpired = false;
  worker.phoneRotates = false;
  worker.delay = {};
  worker.fail = {};
});

/** A controllable clock, in ms. */
function clock(start = 1_700_000_000_000) {
  const c = () => c.t;
  c.t = start;
  c.advance = (seconds) => {
    c.t += seconds * 1000;
  };
  return c;
}

function setup(opts = {}) {
  const wx = opts.wx || createFakeWx(opts.wxOptions);
  const now = opts.now || clock();
  const auth = createAuth({ baseUrl: worker.url, api: wx, now, ...(opts.auth || {}) });
  return { wx, now, auth };
}

async function rejectsWith(promise, code, check) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof AuthError, `expected AuthError, got ${e && e.stack}`);
    assert.equal(e.code, code, `code: ${e.message}`);
    if (check) check(e);
    return true;
  });
}

describe('module shape', () => {
  test('require and import give the same exports', () => {
    const cjs = require('../index.js');
    assert.equal(cjs.createAuth, createAuth);
    assert.equal(cjs.AuthError, AuthError);
    assert.equal(defaultExport, cjs);
    assert.equal(DEFAULT_STORAGE_KEY, 'wx-edge.auth');
    const viaPackage = require('..');
    assert.equal(viaPackage.createAuth, createAuth);
  });

  test('index.js keeps to syntax older mini-program engines parse', () => {
    // Formatting (prettier.config.mjs) must not add trailing commas to calls
    // or parameters (ES2017), and the code avoids ?. ?? and spread.
    const code = readFileSync(new URL('../index.js', import.meta.url), 'utf8').replace(
      /\/\*[\s\S]*?\*\/|\/\/.*$/gm,
      '',
    );
    assert.ok(code.includes('function createAuth('), 'comment stripping ate the code');
    assert.deepEqual(code.match(/,\s*\)/g), null, 'trailing comma before )');
    assert.deepEqual(code.match(/\?\.|\?\?|\.\.\./g), null, 'optional chaining, ?? or spread');
  });

  test('createAuth checks its options', () => {
    assert.throws(() => createAuth({ api: createFakeWx() }), TypeError);
    assert.throws(() => createAuth({ baseUrl: 'edge.example.com', api: createFakeWx() }), TypeError);
    assert.throws(() => createAuth({ baseUrl: 'https://edge.example.com' }), TypeError);
    assert.doesNotThrow(() => createAuth({ baseUrl: 'https://edge.example.com/', api: createFakeWx() }));
  });

  test('AuthError carries code, message, statusCode and is an Error', () => {
    const e = new AuthError('invalid_code', 'bad', { statusCode: 400, wechatErrcode: 40029 });
    assert.ok(e instanceof Error);
    assert.equal(e.name, 'AuthError');
    assert.equal(e.code, 'invalid_code');
    assert.equal(e.message, 'bad');
    assert.equal(e.statusCode, 400);
    assert.equal(e.wechatErrcode, 40029);
    assert.equal(new AuthError('network_error', 'x').statusCode, 0);
  });
});

describe('login and storage', () => {
  test('login: wx.login → POST /auth/login, tokens stored under the default key', async () => {
    const { wx, auth, now } = setup();
    assert.equal(auth.isLoggedIn(), false);
    assert.equal(auth.tokens(), null);
    const t = await auth.login();
    assert.equal(wx.logins, 1);
    assert.equal(worker.count('/auth/login'), 1);
    assert.match(t.access_token, /^at\./);
    assert.equal(t.openid, 'o_alice');
    assert.equal(t.unionid, 'u_alice');
    assert.equal(t.phone_bound, false);
    assert.equal(t.expires_at, now() + 600_000);
    assert.equal(auth.isLoggedIn(), true);
    const stored = wx.storage.get('wx-edge.auth');
    assert.equal(stored.access_token, t.access_token);
    assert.equal(stored.refresh_token, t.refresh_token);
    // login's body was JSON {code}
    const req = worker.requests.find((r) => r.path === '/auth/login');
    assert.match(JSON.parse(req.body).code, /^alice\.\d+$/);
  });

  test('tokens() is a read-only copy', async () => {
    const { auth } = setup();
    await auth.login();
    const t = auth.tokens();
    assert.ok(Object.isFrozen(t));
    assert.throws(() => {
      'use strict';
      t.access_token = 'x';
    });
    assert.notEqual(auth.tokens(), t);
    assert.deepEqual(auth.tokens(), t);
  });

  test('tokens survive a restart: a new createAuth reads them and does not log in', async () => {
    const wx = createFakeWx();
    const now = clock();
    const first = createAuth({ baseUrl: worker.url, api: wx, now });
    await first.login();
    const second = createAuth({ baseUrl: worker.url, api: wx, now });
    assert.equal(second.isLoggedIn(), true);
    assert.deepEqual(second.tokens(), first.tokens());
    const res = await second.request({ url: '/api/me' });
    assert.equal(res.statusCode, 200);
    assert.equal(wx.logins, 1);
    assert.equal(worker.count('/auth/login'), 1);
  });

  test('a custom storageKey is used, a JSON string in storage is accepted, junk is ignored', async () => {
    const wx = createFakeWx();
    const auth = createAuth({ baseUrl: worker.url, api: wx, storageKey: 'my.key' });
    await auth.login();
    assert.ok(wx.storage.has('my.key'));
    assert.ok(!wx.storage.has('wx-edge.auth'));

    wx.storage.set('str.key', JSON.stringify(wx.storage.get('my.key')));
    assert.equal(createAuth({ baseUrl: worker.url, api: wx, storageKey: 'str.key' }).isLoggedIn(), true);
    wx.storage.set('junk.key', '{not json');
    assert.equal(createAuth({ baseUrl: worker.url, api: wx, storageKey: 'junk.key' }).isLoggedIn(), false);
    wx.storage.set('junk2.key', { access_token: 1 });
    assert.equal(createAuth({ baseUrl: worker.url, api: wx, storageKey: 'junk2.key' }).tokens(), null);
  });

  test('ensureLogin logs in once and then reuses the session', async () => {
    const { wx, auth } = setup();
    const a = await auth.ensureLogin();
    const b = await auth.ensureLogin();
    assert.equal(a.access_token, b.access_token);
    assert.equal(wx.logins, 1);
  });

  test('login errors carry the worker code, message, status and wechat errcode', async () => {
    const { auth } = setup({ wxOptions: { user: 'bad' } });
    await rejectsWith(auth.login(), 'invalid_code', (e) => {
      assert.equal(e.statusCode, 400);
      assert.equal(e.wechatErrcode, 40029);
      assert.match(e.message, /call wx\.login\(\) again/);
    });
    assert.equal(auth.isLoggedIn(), false);
  });

  test('wx.login failing rejects with wx_login_failed, and no request is made', async () => {
    const { auth } = setup({ wxOptions: { loginFails: 'login:fail system error' } });
    await rejectsWith(auth.login(), 'wx_login_failed', (e) => {
      assert.equal(e.errMsg, 'login:fail system error');
      assert.equal(e.statusCode, 0);
    });
    assert.equal(worker.count('/auth/login'), 0);
  });

  test('concurrent first requests share ONE wx.login and ONE /auth/login', async () => {
    const { wx, auth } = setup();
    worker.delay['/auth/login'] = 50;
    const results = await Promise.all([1, 2, 3, 4, 5].map((i) => auth.request({ url: `/api/item/${i}` })));
    for (const r of results) assert.equal(r.statusCode, 200);
    assert.equal(wx.logins, 1);
    assert.equal(worker.count('/auth/login'), 1);
    const explicit = await Promise.all([auth.login(), auth.login()]);
    assert.equal(explicit[0].access_token, explicit[1].access_token);
    assert.equal(wx.logins, 2);
  });
});

describe('request', () => {
  test('adds the bearer token, resolves with statusCode/data/header, GET data goes to the query', async () => {
    const { auth } = setup();
    await auth.login();
    const res = await auth.request({
      url: '/api/orders',
      method: 'GET',
      data: { page: 2 },
      header: { 'X-Trace': 'abc', authorization: 'Bearer forged' },
    });
    assert.equal(res.statusCode, 200);
    assert.equal(res.header['x-fake-worker'], 'yes');
    assert.equal(res.data.path, '/api/orders');
    assert.equal(res.data.query, 'page=2');
    assert.equal(res.data.headers['x-trace'], 'abc');
    assert.equal(res.data.headers['x-wx-openid'], 'o_alice');
    const seen = worker.requests.find((r) => r.path === '/api/orders');
    assert.equal(seen.headers.authorization, `Bearer ${auth.tokens().access_token}`);
  });

  test('POST bodies pass through; relative urls without a slash and absolute urls under baseUrl work', async () => {
    const { auth } = setup();
    const res = await auth.request({ url: 'api/orders', method: 'POST', data: { item: 7 } });
    assert.equal(res.data.method, 'POST');
    assert.equal(res.data.path, '/api/orders');
    assert.deepEqual(JSON.parse(res.data.body), { item: 7 });
    const abs = await auth.request({ url: `${worker.url}/api/abs?x=1` });
    assert.equal(abs.data.query, 'x=1');
  });

  test('refuses to send the token to another host', async () => {
    const { auth } = setup();
    await assert.rejects(auth.request({ url: 'https://evil.example.com/steal' }), TypeError);
    await assert.rejects(auth.request({}), TypeError);
    assert.equal(worker.requests.length, 0);
  });

  test('origin answers of any status resolve normally and never trigger a refresh', async () => {
    const { wx, auth } = setup();
    await auth.login();
    const r500 = await auth.request({ url: '/status/500' });
    assert.equal(r500.statusCode, 500);
    const r404 = await auth.request({ url: '/status/404' });
    assert.equal(r404.statusCode, 404);
    const r401 = await auth.request({ url: '/origin-401' });
    assert.equal(r401.statusCode, 401);
    assert.deepEqual(r401.data, { code: 401, msg: 'origin says: not a member' });
    // Even a body shaped like the worker's: without X-WX-Edge-Error it is the origin's.
    const r401b = await auth.request({ url: '/origin-401-oauth' });
    assert.equal(r401b.statusCode, 401);
    assert.equal(r401b.data.error, 'invalid_token');
    const r403 = await auth.request({ url: '/phone-only' });
    assert.equal(r403.statusCode, 403);
    assert.equal(r403.data.error, 'phone_required');
    assert.equal(worker.count('/auth/refresh'), 0);
    assert.equal(wx.logins, 1);
  });

  test('network failure of wx.request rejects with network_error', async () => {
    const wx = createFakeWx();
    // Nothing listens on port 9 (discard) on localhost in a test box.
    const auth = createAuth({ baseUrl: 'http://127.0.0.1:9', api: wx });
    await rejectsWith(auth.request({ url: '/api/x' }), 'network_error', (e) => {
      assert.equal(e.statusCode, 0);
      assert.match(e.errMsg, /^request:fail/);
    });
    assert.equal(auth.isLoggedIn(), false);
  });

  test('a network failure of the request itself rejects and keeps the tokens', async () => {
    const wx = createFakeWx({ failRequest: (o) => (o.url.includes('/api/flaky') ? 'timeout' : null) });
    const { auth } = setup({ wx });
    await auth.login();
    await rejectsWith(auth.request({ url: '/api/flaky' }), 'network_error', (e) => {
      assert.equal(e.errMsg, 'request:fail timeout');
    });
    assert.equal(auth.isLoggedIn(), true);
  });
});

describe('refresh', () => {
  test('an access token past expires_in (minus the margin) is refreshed before use', async () => {
    const { wx, auth, now } = setup();
    const first = await auth.login();
    now.advance(600 - 31);
    await auth.request({ url: '/api/a' });
    assert.equal(worker.count('/auth/refresh'), 0, 'still outside the 30 s margin');
    now.advance(2);
    const res = await auth.request({ url: '/api/b' });
    assert.equal(res.statusCode, 200);
    assert.equal(worker.count('/auth/refresh'), 1);
    assert.equal(wx.logins, 1);
    const t = auth.tokens();
    assert.notEqual(t.access_token, first.access_token);
    assert.notEqual(t.refresh_token, first.refresh_token, 'refresh tokens rotate');
    assert.equal(t.expires_at, now() + 600_000);
    assert.equal(wx.storage.get('wx-edge.auth').refresh_token, t.refresh_token);
  });

  test('refreshMargin is configurable', async () => {
    const { auth, now } = setup({ auth: { refreshMargin: 120 } });
    await auth.login();
    now.advance(600 - 119);
    await auth.request({ url: '/api/a' });
    assert.equal(worker.count('/auth/refresh'), 1);
  });

  test('5 concurrent requests with an expired token: exactly one refresh, no login', async () => {
    const { wx, auth, now } = setup();
    await auth.login();
    now.advance(3600);
    worker.delay['/auth/refresh'] = 50;
    const results = await Promise.all([1, 2, 3, 4, 5].map((i) => auth.request({ url: `/api/c/${i}` })));
    for (const r of results) assert.equal(r.statusCode, 200);
    assert.equal(worker.count('/auth/refresh'), 1);
    assert.equal(wx.count('/auth/refresh'), 1);
    assert.equal(wx.logins, 1);
    const used = new Set(
      worker.requests.filter((r) => r.path.startsWith('/api/c/')).map((r) => r.headers.authorization),
    );
    assert.deepEqual([...used], [`Bearer ${auth.tokens().access_token}`]);
  });

  test('5 concurrent requests meeting 401 token_expired: one refresh, each retried once', async () => {
    const { wx, auth } = setup();
    await auth.login();
    worker.expireAccessTokens(); // the clock says fine, the worker says expired
    worker.delay['/auth/refresh'] = 30;
    const results = await Promise.all([1, 2, 3, 4, 5].map((i) => auth.request({ url: `/api/d/${i}` })));
    for (const r of results) assert.equal(r.statusCode, 200);
    assert.equal(worker.count('/auth/refresh'), 1);
    assert.equal(wx.logins, 1);
    for (let i = 1; i <= 5; i++) assert.equal(worker.count(`/api/d/${i}`), 2, 'first try + one retry');
  });

  test('401 invalid_token (corrupted stored token) → refresh → retry', async () => {
    const wx = createFakeWx();
    const now = clock();
    await createAuth({ baseUrl: worker.url, api: wx, now }).login();
    const stored = wx.storage.get('wx-edge.auth');
    wx.storage.set('wx-edge.auth', { ...stored, access_token: 'garbage' });
    const auth = createAuth({ baseUrl: worker.url, api: wx, now });
    const res = await auth.request({ url: '/api/e' });
    assert.equal(res.statusCode, 200);
    assert.equal(worker.count('/auth/refresh'), 1);
    assert.equal(wx.logins, 1);
    assert.notEqual(auth.tokens().access_token, 'garbage');
  });

  test('a second renewable 401 after the retry rejects with that AuthError', async () => {
    const { auth } = setup();
    await auth.login();
    worker.alwaysExpired = true;
    await rejectsWith(auth.request({ url: '/api/f' }), 'token_expired', (e) => {
      assert.equal(e.statusCode, 401);
      assert.match(e.message, /expired/);
    });
    assert.equal(worker.count('/auth/refresh'), 1);
    assert.equal(worker.count('/api/f'), 2);
  });

  test('dead refresh token (session gone) → a fresh wx.login, once for concurrent callers', async () => {
    const { wx, auth, now } = setup();
    const first = await auth.login();
    worker.revokeSessions();
    now.advance(3600);
    const results = await Promise.all([1, 2, 3].map((i) => auth.request({ url: `/api/g/${i}` })));
    for (const r of results) assert.equal(r.statusCode, 200);
    assert.equal(worker.count('/auth/refresh'), 1);
    assert.equal(wx.logins, 2);
    assert.equal(worker.count('/auth/login'), 2);
    assert.notEqual(auth.tokens().refresh_token, first.refresh_token);
  });

  test('401 session_revoked → refresh fails → new login → retry succeeds', async () => {
    const { wx, auth } = setup();
    await auth.login();
    worker.revokeSessions();
    const res = await auth.request({ url: '/api/h' });
    assert.equal(res.statusCode, 200);
    assert.equal(worker.count('/auth/refresh'), 1);
    assert.equal(wx.logins, 2);
    assert.equal(worker.count('/api/h'), 2);
  });

  test('refresh_reused clears storage (then a new login follows)', async () => {
    const wx = createFakeWx();
    const now = clock();
    const a = createAuth({ baseUrl: worker.url, api: wx, now });
    await a.login();
    const snapshot = wx.storage.get('wx-edge.auth');
    now.advance(3600);
    await a.request({ url: '/api/i' }); // rotates the refresh token
    // Another copy of the OLD tokens (say a restored backup) tries to refresh.
    wx.storage.set('wx-edge.auth', snapshot);
    wx.loginFails = 'login:fail offline';
    const b = createAuth({ baseUrl: worker.url, api: wx, now });
    await rejectsWith(b.request({ url: '/api/i' }), 'wx_login_failed');
    assert.equal(worker.count('/auth/refresh'), 2);
    assert.equal(wx.storage.has('wx-edge.auth'), false, 'storage cleared on refresh_reused');
    assert.equal(b.tokens(), null);
    assert.equal(b.isLoggedIn(), false);
    wx.loginFails = null;
    const res = await b.request({ url: '/api/i' });
    assert.equal(res.statusCode, 200);
    assert.ok(wx.storage.has('wx-edge.auth'));
  });

  test('a refresh that fails for a non-auth reason rejects and keeps the tokens', async () => {
    const { wx, auth, now } = setup();
    await auth.login();
    now.advance(3600);
    worker.fail['/auth/refresh'] = {
      status: 502,
      body: { error: 'wechat_unavailable', message: 'WeChat did not answer in time', wechat_errcode: -1 },
    };
    await rejectsWith(auth.request({ url: '/api/j' }), 'wechat_unavailable', (e) => {
      assert.equal(e.statusCode, 502);
      assert.equal(e.wechatErrcode, -1);
    });
    assert.equal(auth.isLoggedIn(), true);
    assert.equal(wx.logins, 1);
    const res = await auth.request({ url: '/api/j' });
    assert.equal(res.statusCode, 200);
  });

  test('an expired refresh token (by the clock) goes straight to wx.login', async () => {
    const { wx, auth, now } = setup();
    await auth.login();
    now.advance(2592000 + 1);
    assert.equal(auth.isLoggedIn(), false);
    const res = await auth.request({ url: '/api/k' });
    assert.equal(res.statusCode, 200);
    assert.equal(worker.count('/auth/refresh'), 0);
    assert.equal(wx.logins, 2);
  });
});

/**
 * A sleep that does not wait: records each wait (ms) and how many requests
 * the worker had received when it began.
 */
function fakeSleep() {
  const sleep = (ms) => {
    sleep.waits.push({ ms, requests: worker.requests.length });
    return Promise.resolve();
  };
  sleep.waits = [];
  return sleep;
}

describe("retries after the worker's 429 rate_limited and 503 store_unavailable", () => {
  const limited = (retryAfter) =>
    worker.workerError(429, 'rate_limited', retryAfter === undefined ? {} : { 'retry-after': retryAfter });
  const storeDown = (retryAfter = '1') => worker.workerError(503, 'store_unavailable', { 'retry-after': retryAfter });

  async function loggedIn(opts = {}) {
    const sleep = fakeSleep();
    const s = setup({ ...opts, auth: { sleep, ...(opts.auth || {}) } });
    await s.auth.login();
    worker.resetCounts();
    return { ...s, sleep };
  }

  test('429 with Retry-After 2: the same request is sent once more, after a 2 s wait', async () => {
    const { auth, sleep } = await loggedIn();
    worker.fail['/api/orders'] = limited('2');
    const res = await auth.request({ url: '/api/orders', method: 'POST', data: { sku: 'a-1' } });
    assert.equal(res.statusCode, 200);
    assert.equal(res.data.path, '/api/orders');
    assert.equal(worker.count('/api/orders'), 2);
    // One wait, of 2000 ms, begun after the first attempt and before the second.
    assert.deepEqual(sleep.waits, [{ ms: 2000, requests: 1 }]);
    const [first, second] = worker.requests.filter((r) => r.path === '/api/orders');
    assert.equal(second.method, 'POST');
    assert.equal(second.body, first.body);
    assert.equal(second.headers.authorization, first.headers.authorization);
  });

  test('a second 429 rejects with AuthError rate_limited, after exactly one retry', async () => {
    const { auth, sleep } = await loggedIn();
    worker.fail['/api/orders'] = [limited('2'), limited('3')];
    await rejectsWith(auth.request({ url: '/api/orders' }), 'rate_limited', (e) => {
      assert.equal(e.statusCode, 429);
      assert.equal(e.retryAfter, 3);
      assert.equal(e.message, 'the worker says rate_limited');
    });
    assert.equal(worker.count('/api/orders'), 2);
    assert.equal(sleep.waits.length, 1);
    assert.equal(auth.isLoggedIn(), true, 'a rate limit does not end the session');
  });

  test('login: a 429 is retried with a new wx.login code; a second one rejects and stores nothing', async () => {
    const sleep = fakeSleep();
    const { wx, auth } = setup({ auth: { sleep } });
    worker.fail['/auth/login'] = limited('1');
    const t = await auth.login();
    assert.match(t.access_token, /^at\./);
    assert.equal(wx.logins, 2, 'WeChat may have used up the first code: a retry needs a new one');
    const codes = worker.requests.filter((r) => r.path === '/auth/login').map((r) => JSON.parse(r.body).code);
    assert.equal(codes.length, 2);
    assert.notEqual(codes[0], codes[1]);
    assert.deepEqual(sleep.waits, [{ ms: 1000, requests: 1 }]);

    const other = setup({ auth: { sleep: fakeSleep() } });
    worker.fail['/auth/login'] = [limited('1'), limited('1')];
    await rejectsWith(other.auth.login(), 'rate_limited', (e) => assert.equal(e.statusCode, 429));
    assert.equal(other.wx.logins, 2);
    assert.equal(other.auth.tokens(), null);
    assert.equal(other.wx.storage.size, 0);
  });

  test('a huge Retry-After is cut to maxRetryWait: 10 s by default, or as configured', async () => {
    const { auth, sleep } = await loggedIn();
    worker.fail['/api/slow'] = limited('86400');
    assert.equal((await auth.request({ url: '/api/slow' })).statusCode, 200);
    assert.deepEqual(
      sleep.waits.map((w) => w.ms),
      [10_000],
    );

    const custom = await loggedIn({ auth: { maxRetryWait: 3 } });
    worker.fail['/api/slow'] = limited('86400');
    assert.equal((await custom.auth.request({ url: '/api/slow' })).statusCode, 200);
    assert.deepEqual(
      custom.sleep.waits.map((w) => w.ms),
      [3000],
    );
  });

  test('a missing or unreadable Retry-After waits 1 s; an HTTP date is read against the clock', async () => {
    const { auth, sleep, now } = await loggedIn();
    const inFive = new Date(now() + 5000).toUTCString();
    for (const r of [undefined, 'soon', '1.5', '-3', '', inFive, '0']) {
      worker.fail['/api/w'] = limited(r);
      assert.equal((await auth.request({ url: '/api/w' })).statusCode, 200, `Retry-After ${r}`);
    }
    assert.deepEqual(
      sleep.waits.map((w) => w.ms),
      [1000, 1000, 1000, 1000, 1000, 5000, 0],
    );
    assert.equal(worker.count('/api/w'), 14);
  });

  test('503 store_unavailable: a refresh is retried once (same refresh token) and succeeds', async () => {
    const { wx, auth, now, sleep } = await loggedIn();
    const before = auth.tokens();
    now.advance(3600);
    worker.fail['/auth/refresh'] = storeDown('2');
    const res = await auth.request({ url: '/api/r' });
    assert.equal(res.statusCode, 200);
    const sent = worker.requests.filter((r) => r.path === '/auth/refresh').map((r) => JSON.parse(r.body).refresh_token);
    assert.deepEqual(sent, [before.refresh_token, before.refresh_token]);
    assert.deepEqual(sleep.waits, [{ ms: 2000, requests: 1 }]);
    assert.equal(wx.logins, 1, 'no new login: the session survived');
    assert.notEqual(auth.tokens().refresh_token, before.refresh_token);
  });

  test('503 store_unavailable on a proxied request and on /auth/phone: retried once', async () => {
    const { auth, sleep } = await loggedIn();
    worker.fail['/api/p'] = storeDown();
    assert.equal((await auth.request({ url: '/api/p' })).statusCode, 200);
    assert.equal(worker.count('/api/p'), 2);
    worker.fail['/auth/phone'] = storeDown();
    const phone = await auth.bindPhone({ code: 'phone-13800138000' });
    assert.equal(phone.purePhoneNumber, '13800138000');
    assert.equal(worker.count('/auth/phone'), 2);
    assert.equal(auth.tokens().phone_bound, true);
    assert.equal(sleep.waits.length, 2);
    worker.fail['/auth/session'] = [storeDown(), storeDown()];
    await rejectsWith(auth.getSession(), 'store_unavailable', (e) => assert.equal(e.statusCode, 503));
    assert.equal(worker.count('/auth/session'), 2);
  });

  test("an origin's own 429 or 503 (no X-WX-Edge-Error) is not retried and resolves", async () => {
    const { auth, sleep } = await loggedIn();
    const fromOrigin = (status, error) => ({
      status,
      body: { error, message: 'origin: slow down' },
      headers: { 'retry-after': '1' },
    });
    worker.fail['/api/o'] = fromOrigin(429, 'rate_limited');
    const res = await auth.request({ url: '/api/o' });
    assert.equal(res.statusCode, 429);
    assert.equal(res.data.message, 'origin: slow down');
    worker.fail['/api/o'] = fromOrigin(503, 'store_unavailable');
    assert.equal((await auth.request({ url: '/api/o' })).statusCode, 503);
    assert.equal(worker.count('/api/o'), 2, 'one request each');
    assert.deepEqual(sleep.waits, []);
  });

  test("the worker's other errors are not retried, even with a Retry-After", async () => {
    const sleep = fakeSleep();
    const { auth } = setup({ auth: { sleep } });
    worker.fail['/auth/login'] = worker.workerError(502, 'wechat_unavailable', { 'retry-after': '1' });
    await rejectsWith(auth.login(), 'wechat_unavailable');
    // A 503 of the worker's that is not store_unavailable, and a 429 whose body says otherwise.
    worker.fail['/auth/login'] = worker.workerError(503, 'server_misconfigured', { 'retry-after': '1' });
    await rejectsWith(auth.login(), 'server_misconfigured');
    worker.fail['/auth/login'] = worker.workerError(429, 'invalid_code', { 'retry-after': '1' });
    await rejectsWith(auth.login(), 'invalid_code');
    assert.equal(worker.count('/auth/login'), 3);
    assert.deepEqual(sleep.waits, []);
  });

  test('without an injected sleep the wait is a real timer', async () => {
    const { auth } = setup();
    await auth.login();
    worker.resetCounts();
    worker.fail['/api/t'] = limited('0');
    const res = await auth.request({ url: '/api/t' });
    assert.equal(res.statusCode, 200);
    assert.equal(worker.count('/api/t'), 2);
  });
});

describe('bindPhone', () => {
  test('code path: POST /auth/phone {code}, new access token stored, refresh token kept, phone returned', async () => {
    const { wx, auth } = setup({ wxOptions: { user: 'pat' } });
    const before = await auth.login();
    const out = await auth.bindPhone({ code: 'phone-13800138000', errMsg: 'getPhoneNumber:ok' });
    assert.deepEqual(out, { phoneNumber: '13800138000', purePhoneNumber: '13800138000', countryCode: '86' });
    const req = worker.requests.find((r) => r.path === '/auth/phone');
    assert.deepEqual(JSON.parse(req.body), { code: 'phone-13800138000' });
    assert.equal(req.headers.authorization, `Bearer ${before.access_token}`);
    const t = auth.tokens();
    assert.equal(t.phone_bound, true);
    assert.notEqual(t.access_token, before.access_token);
    // The answer has no refresh_token: the one from the login is kept, with its expiry.
    assert.equal(t.refresh_token, before.refresh_token);
    assert.equal(t.refresh_expires_at, before.refresh_expires_at);
    assert.equal(t.openid, before.openid);
    assert.equal(wx.storage.get('wx-edge.auth').phone_bound, true);
    assert.equal(wx.storage.get('wx-edge.auth').refresh_token, before.refresh_token);
    const res = await auth.request({ url: '/phone-only' });
    assert.equal(res.data.headers['x-wx-phone'], '13800138000');
  });

  test('a double tap: two binds, then the kept refresh token still refreshes', async () => {
    const { auth, now } = setup({ wxOptions: { user: 'dee' } });
    const before = await auth.login();
    const [a, b] = await Promise.all([
      auth.bindPhone({ code: 'phone-13800138001' }),
      auth.bindPhone({ code: 'phone-13800138002' }),
    ]);
    assert.equal(a.phoneNumber, '13800138001');
    assert.equal(b.phoneNumber, '13800138002');
    assert.equal(auth.tokens().refresh_token, before.refresh_token);
    now.advance(3600);
    assert.equal((await auth.request({ url: '/api/after' })).statusCode, 200);
    assert.equal(worker.count('/auth/refresh'), 1);
    assert.notEqual(auth.tokens().refresh_token, before.refresh_token);
  });

  test('a bind answered after a refresh rotated the token keeps the rotated one, never the one it was sent with', async () => {
    const { wx, auth, now } = setup({ wxOptions: { user: 'ray' } });
    const before = await auth.login();
    worker.delay['/auth/phone'] = 100;
    const bound = auth.bindPhone({ code: 'phone-13800138003' });
    // While the binding is in flight, the access token runs out and a request refreshes.
    while (worker.count('/auth/phone') === 0) await new Promise((r) => setTimeout(r, 5));
    now.advance(3600);
    assert.equal((await auth.request({ url: '/api/during' })).statusCode, 200);
    const rotated = auth.tokens().refresh_token;
    assert.notEqual(rotated, before.refresh_token);
    await bound;
    const t = auth.tokens();
    assert.equal(t.refresh_token, rotated, 'the rotated refresh token survives the bind answer');
    assert.equal(t.phone_bound, true);
    // The next refresh presents the rotated token: no reuse, no new login.
    now.advance(3600);
    assert.equal((await auth.request({ url: '/api/after' })).statusCode, 200);
    assert.equal(worker.count('/auth/refresh'), 2);
    assert.equal(wx.logins, 1, 'the session survived');
  });

  test('a bind answered after a new login leaves the new session alone', async () => {
    const { wx, auth } = setup({ wxOptions: { user: 'kim' } });
    await auth.login();
    worker.delay['/auth/phone'] = 100;
    const bound = auth.bindPhone({ code: 'phone-13800138004' });
    while (worker.count('/auth/phone') === 0) await new Promise((r) => setTimeout(r, 5));
    const second = await auth.login();
    const out = await bound;
    assert.equal(out.phoneNumber, '13800138004');
    assert.deepEqual(auth.tokens(), second, 'the new login is untouched');
    assert.equal(wx.logins, 2);
  });

  test('an older worker that rotates on binding: its refresh_token is stored', async () => {
    const { auth } = setup({ wxOptions: { user: 'old' } });
    const before = await auth.login();
    worker.phoneRotates = true;
    await auth.bindPhone({ code: 'phone-13800138005' });
    const t = auth.tokens();
    assert.notEqual(t.refresh_token, before.refresh_token);
    assert.equal(t.phone_bound, true);
    await auth.logout();
  });

  test('code path logs in first when there is no session (the code does not need the session_key)', async () => {
    const { wx, auth } = setup();
    await auth.bindPhone({ code: 'phone-13900000000' });
    assert.equal(wx.logins, 1);
    assert.equal(auth.tokens().phone_bound, true);
  });

  test('the whole event is accepted as well as event.detail', async () => {
    const { auth } = setup();
    await auth.login();
    const out = await auth.bindPhone({ type: 'getphonenumber', detail: { code: 'phone-13700000000' } });
    assert.equal(out.phoneNumber, '13700000000');
  });

  test('legacy path: POST {encryptedData, iv} without calling wx.login', async () => {
    const { wx, auth } = setup({ wxOptions: { user: 'lee' } });
    await auth.login();
    const enc = worker.encryptPhone('lee', '13600000000');
    const out = await auth.bindPhone({ ...enc, errMsg: 'getPhoneNumber:ok' });
    assert.equal(out.phoneNumber, '13600000000');
    assert.equal(wx.logins, 1, 'no wx.login between encryptedData and bindPhone');
    const req = worker.requests.find((r) => r.path === '/auth/phone');
    assert.deepEqual(JSON.parse(req.body), enc);
  });

  test('legacy path with an expired access token refreshes (same session) instead of logging in', async () => {
    const { wx, auth, now } = setup({ wxOptions: { user: 'lou' } });
    await auth.login();
    const enc = worker.encryptPhone('lou', '13500000000');
    now.advance(3600);
    const out = await auth.bindPhone(enc);
    assert.equal(out.phoneNumber, '13500000000');
    assert.equal(worker.count('/auth/refresh'), 1);
    assert.equal(wx.logins, 1);
  });

  test('legacy path without a session rejects not_logged_in and never calls wx.login', async () => {
    const { wx, auth } = setup();
    await rejectsWith(auth.bindPhone({ encryptedData: 'abc', iv: 'def' }), 'not_logged_in', (e) => {
      assert.match(e.message, /session_key/);
    });
    assert.equal(wx.logins, 0);
    assert.equal(worker.requests.length, 0);
  });

  test('legacy path with a dead session rejects with the refresh error and never calls wx.login', async () => {
    const { wx, auth, now } = setup({ wxOptions: { user: 'liz' } });
    await auth.login();
    const enc = worker.encryptPhone('liz', '13400000000');
    worker.revokeSessions();
    now.advance(3600);
    await rejectsWith(auth.bindPhone(enc), 'invalid_refresh_token');
    assert.equal(wx.logins, 1);
    assert.equal(auth.isLoggedIn(), false);
  });

  test('decrypt_failed (wx.login ran after the data was encrypted) passes the worker message through', async () => {
    const { auth } = setup({ wxOptions: { user: 'max' } });
    await auth.login();
    const enc = worker.encryptPhone('max', '13300000000');
    await auth.login(); // rotates the session_key: the pitfall
    await rejectsWith(auth.bindPhone(enc), 'decrypt_failed', (e) => {
      assert.equal(e.statusCode, 400);
      assert.match(e.message, /log in again, then ask for the phone number again/);
    });
  });

  test('a denied phone prompt rejects with phone_denied, without any request', async () => {
    const { auth } = setup();
    await auth.login();
    const n = worker.requests.length;
    await rejectsWith(auth.bindPhone({ errMsg: 'getPhoneNumber:fail user deny' }), 'phone_denied', (e) => {
      assert.equal(e.errMsg, 'getPhoneNumber:fail user deny');
    });
    await rejectsWith(auth.bindPhone({ errMsg: 'getPhoneNumber:fail:user deny', errno: 104 }), 'phone_denied');
    await rejectsWith(auth.bindPhone({}), 'invalid_request');
    await rejectsWith(auth.bindPhone(undefined), 'invalid_request');
    assert.equal(worker.requests.length, n);
  });

  test('an invalid phone code rejects with the worker error', async () => {
    const { auth } = setup();
    await auth.login();
    await rejectsWith(auth.bindPhone({ code: 'nope' }), 'invalid_code', (e) => assert.equal(e.wechatErrcode, 40029));
  });
});

describe('getSession and logout', () => {
  test('getSession returns the worker session; without tokens it rejects not_logged_in', async () => {
    const { wx, auth } = setup();
    await rejectsWith(auth.getSession(), 'not_logged_in');
    assert.equal(wx.logins, 0);
    await auth.login();
    const s = await auth.getSession();
    assert.equal(s.openid, 'o_alice');
    assert.equal(s.phone_bound, false);
    assert.equal(typeof s.expires_at, 'number');
  });

  test('getSession refreshes an expired token and rejects when the session is gone', async () => {
    const { wx, auth, now } = setup();
    await auth.login();
    now.advance(3600);
    await auth.getSession();
    assert.equal(worker.count('/auth/refresh'), 1);
    worker.revokeSessions();
    await rejectsWith(auth.getSession(), 'invalid_refresh_token');
    assert.equal(auth.isLoggedIn(), false);
    assert.equal(wx.logins, 1, 'getSession checks, it never logs in');
  });

  test('logout: POST /auth/logout with the bearer token, storage cleared', async () => {
    const { wx, auth } = setup();
    const t = await auth.login();
    await auth.logout();
    const req = worker.requests.find((r) => r.path === '/auth/logout');
    assert.equal(req.method, 'POST');
    assert.equal(req.headers.authorization, `Bearer ${t.access_token}`);
    assert.equal(worker.sessionCount(), 0);
    assert.equal(wx.storage.has('wx-edge.auth'), false);
    assert.equal(auth.isLoggedIn(), false);
    assert.equal(auth.tokens(), null);
  });

  test('logout ignores 401 (already gone) and is a no-op without a session', async () => {
    const { wx, auth } = setup();
    await auth.logout();
    assert.equal(worker.requests.length, 0);
    await auth.login();
    worker.revokeSessions();
    await auth.logout();
    assert.equal(wx.storage.has('wx-edge.auth'), false);
  });

  test('logout with an expired access token refreshes first so the session is really deleted', async () => {
    const { auth, now } = setup();
    await auth.login();
    now.advance(3600);
    await auth.logout();
    assert.equal(worker.count('/auth/refresh'), 1);
    assert.equal(worker.count('/auth/logout'), 1);
    assert.equal(worker.sessionCount(), 0);
  });

  test('logout with a network failure ends the local session and rejects logout_pending (cause network_error)', async () => {
    const wx = createFakeWx({ failRequest: (o) => (o.url.endsWith('/auth/logout') ? 'offline' : null) });
    const { auth } = setup({ wx });
    await auth.login();
    await rejectsWith(auth.logout(), 'logout_pending', (e) => {
      assert.equal(e.cause.code, 'network_error');
      assert.equal(e.pending, 1);
    });
    assert.equal(wx.storage.has('wx-edge.auth'), false);
    assert.equal(auth.isLoggedIn(), false);
    assert.equal(auth.hasPendingLogout(), true);
  });

  test('a refresh in flight during logout does not bring the tokens back', async () => {
    const { auth, now } = setup();
    await auth.login();
    now.advance(3600);
    worker.delay['/auth/refresh'] = 50;
    const pending = auth.request({ url: '/api/l' });
    await new Promise((r) => setTimeout(r, 10));
    await auth.logout();
    assert.equal(auth.tokens(), null);
    const res = await pending; // it finished its refresh before logout ran
    assert.equal(res.statusCode, 200);
    assert.equal(auth.tokens(), null);
  });
});

describe('logout races', () => {
  test('a login started while logout is in flight is a new session: kept, and the old one is still logged out', async () => {
    const { auth } = setup();
    const first = await auth.login();
    const sessions = worker.sessionCount();
    worker.delay['/auth/logout'] = 20;
    worker.delay['/auth/login'] = 100;
    const out = auth.logout();
    assert.equal(auth.isLoggedIn(), false, 'the local session ended when logout() was called');
    assert.equal(auth.tokens(), null);
    await new Promise((r) => setTimeout(r, 5));
    const relogin = auth.login(); // after logout(): a new session
    await out;
    const second = await relogin;
    assert.notEqual(second.access_token, first.access_token);
    assert.deepEqual(auth.tokens(), second);
    assert.equal(worker.sessionCount(), sessions, 'the old session is gone, the new one lives');
    assert.equal(auth.hasPendingLogout(), false);
  });
});

describe('pending logout: the worker did not confirm', () => {
  const KEY = 'wx-edge.auth.logout';
  const storeDown = () => worker.workerError(503, 'store_unavailable', { 'retry-after': '1' });

  /** The worker's answer to GET /auth/session with this access token: 200 while its session lives. */
  async function sessionStatus(access) {
    const res = await fetch(`${worker.url}/auth/session`, { headers: { authorization: `Bearer ${access}` } });
    return res.status;
  }

  async function until(cond, what) {
    for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
    assert.ok(cond(), `timed out waiting for ${what}`);
  }

  /** Logged in, then a logout the worker answers 503 store_unavailable twice (the retry too). */
  async function pendingLogout(opts = {}) {
    const sleep = fakeSleep();
    const s = setup({ ...opts, auth: { sleep, ...(opts.auth || {}) } });
    const first = await s.auth.login();
    worker.fail['/auth/logout'] = [storeDown(), storeDown()];
    await rejectsWith(s.auth.logout(), 'logout_pending', (e) => {
      assert.equal(e.statusCode, 503);
      assert.equal(e.cause.code, 'store_unavailable');
      assert.equal(e.pending, 1);
    });
    return { ...s, sleep, first };
  }

  test('server down during logout: the local session ends, what finishes the logout is kept, the app is told', async () => {
    const { wx, auth, first } = await pendingLogout();
    assert.equal(worker.count('/auth/logout'), 2, 'sent, and sent once more after Retry-After');
    assert.equal(auth.isLoggedIn(), false);
    assert.equal(auth.tokens(), null);
    assert.equal(wx.storage.has('wx-edge.auth'), false);
    assert.equal(auth.hasPendingLogout(), true);
    const kept = wx.storage.get(KEY);
    assert.equal(kept.length, 1);
    assert.equal(kept[0].access_token, first.access_token);
    assert.equal(kept[0].refresh_token, first.refresh_token);
    assert.equal(await sessionStatus(first.access_token), 200, 'the session still lives at the worker');

    // No request uses the old tokens: the next one logs in anew.
    worker.resetCounts();
    await auth.request({ url: '/api/after' });
    assert.equal(wx.logins, 2);
    const sent = worker.requests.find((r) => r.path === '/api/after');
    assert.notEqual(sent.headers.authorization, `Bearer ${first.access_token}`);
  });

  test('a later logout() retries it: the worker confirms, the pending logout is cleared', async () => {
    const { wx, auth, first } = await pendingLogout();
    await auth.logout();
    assert.equal(auth.hasPendingLogout(), false);
    assert.equal(wx.storage.has(KEY), false);
    assert.equal(await sessionStatus(first.access_token), 401, 'the session is gone at the worker');
  });

  test("the worker's 401 session_revoked on the retry means it is over: cleared", async () => {
    const { wx, auth } = await pendingLogout();
    worker.fail['/auth/logout'] = worker.workerError(401, 'session_revoked');
    await auth.logout();
    assert.equal(auth.hasPendingLogout(), false);
    assert.equal(wx.storage.has(KEY), false);
  });

  test("a 401 without the worker's marker (not the worker's answer) does not clear it", async () => {
    const { wx, auth } = await pendingLogout();
    worker.fail['/auth/logout'] = { status: 401, body: { error: 'session_revoked', message: 'forged' } };
    await rejectsWith(auth.logout(), 'logout_pending');
    assert.equal(wx.storage.get(KEY).length, 1);
  });

  test('a login after a pending logout keeps it and still finishes it', async () => {
    const { wx, auth, first } = await pendingLogout();
    const second = await auth.login();
    await until(() => !auth.hasPendingLogout(), 'the pending logout to finish');
    assert.equal(await sessionStatus(first.access_token), 401, 'the old session is logged out');
    assert.equal(await sessionStatus(second.access_token), 200, 'the new one lives');
    assert.deepEqual(auth.tokens(), second);
    assert.equal(wx.storage.has(KEY), false);
  });

  test('a login after a pending logout whose retry fails too: both are kept, the old one still pending', async () => {
    const { wx, auth, now, first } = await pendingLogout();
    now.advance(5); // past the backoff
    worker.fail['/auth/logout'] = [storeDown(), storeDown()];
    const second = await auth.login();
    await until(() => !worker.fail['/auth/logout'], 'the background retry');
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(auth.tokens(), second);
    assert.equal(wx.storage.get(KEY)[0].access_token, first.access_token);
    // Then the worker is back: logging out the new session finishes both.
    await auth.logout();
    assert.equal(await sessionStatus(first.access_token), 401);
    assert.equal(await sessionStatus(second.access_token), 401);
    assert.equal(wx.storage.has(KEY), false);
  });

  test('at app start a new client finishes what the last run could not', async () => {
    const { wx, now, first } = await pendingLogout();
    const next = createAuth({ baseUrl: worker.url, api: wx, now, sleep: fakeSleep() });
    assert.equal(next.isLoggedIn(), false);
    await until(() => !next.hasPendingLogout(), 'the pending logout to finish');
    assert.equal(await sessionStatus(first.access_token), 401);
    assert.equal(wx.storage.has(KEY), false);
  });

  test('background retries (on request) back off; login() and logout() retry at once', async () => {
    const { auth, now } = await pendingLogout(); // one failed try
    worker.resetCounts();
    worker.fail['/auth/logout'] = [storeDown(), storeDown()];
    await auth.login(); // retries at once, whatever the backoff: fails again (2 in a row)
    await until(() => worker.count('/auth/logout') === 2, 'the retry on login');
    await new Promise((r) => setTimeout(r, 20));
    await auth.request({ url: '/api/a' }); // within the 2 s backoff: no retry
    assert.equal(worker.count('/auth/logout'), 2);
    now.advance(3);
    worker.fail['/auth/logout'] = [storeDown(), storeDown()];
    await auth.request({ url: '/api/b' }); // past it: a background retry, which fails (3 in a row)
    await until(() => worker.count('/auth/logout') === 4, 'the background retry');
    await new Promise((r) => setTimeout(r, 20));
    now.advance(3); // the next one waits 4 s
    await auth.request({ url: '/api/c' });
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(worker.count('/auth/logout'), 4);
    assert.equal(auth.hasPendingLogout(), true);
    await auth.logout();
    assert.equal(auth.hasPendingLogout(), false);
  });

  test('with an expired access token the retry refreshes first, and keeps the rotated refresh token', async () => {
    const { wx, auth, now, first } = await pendingLogout();
    now.advance(3600); // the access token has expired
    worker.resetCounts();
    worker.fail['/auth/logout'] = [storeDown(), storeDown()];
    await rejectsWith(auth.logout(), 'logout_pending');
    assert.equal(worker.count('/auth/refresh'), 1);
    const kept = wx.storage.get(KEY)[0];
    assert.notEqual(kept.access_token, first.access_token);
    assert.equal(await sessionStatus(kept.access_token), 200);
    await auth.logout();
    assert.equal(await sessionStatus(kept.access_token), 401);
    assert.equal(auth.hasPendingLogout(), false);
  });

  test('a dead refresh token on the retry means the session is over: cleared', async () => {
    const { auth, now } = await pendingLogout();
    now.advance(3600);
    worker.fail['/auth/refresh'] = worker.workerError(401, 'invalid_refresh_token');
    await auth.logout();
    assert.equal(auth.hasPendingLogout(), false);
  });
});

describe('platform styles', () => {
  test('Taro style (callbacks + a promise that rejects): works, no unhandled rejection', async () => {
    const unhandled = [];
    const onUnhandled = (e) => unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    try {
      const wx = createFakeWx({
        style: 'taro',
        failRequest: (o) => (o.url.includes('/api/down') ? 'offline' : null),
      });
      const { auth } = setup({ wx });
      const res = await auth.request({ url: '/api/taro' });
      assert.equal(res.statusCode, 200);
      await rejectsWith(auth.request({ url: '/api/down' }), 'network_error');
      await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(unhandled, []);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  test('promise-only style (callbacks ignored) works too', async () => {
    const wx = createFakeWx({ style: 'promise' });
    const { auth } = setup({ wx });
    const res = await auth.request({ url: '/api/promise' });
    assert.equal(res.statusCode, 200);
    await auth.logout();
    assert.equal(auth.isLoggedIn(), false);
  });
});
