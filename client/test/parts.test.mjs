// Unit tests of the client's parts (client/lib/), each on its own, without a
// worker: the storage record, the transport's reading of answers and its
// retry, and the session's sharing of one login and logout's epoch. The
// whole client is tested in client.test.mjs (fake worker) and e2e.test.mjs.
//
// Run: node --test 'client/test/*.test.mjs'

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { existsSync, readFileSync, readdirSync } from 'node:fs';

const require = createRequire(import.meta.url);
const { AuthError } = require('../lib/error.js');
const storage = require('../lib/storage.js');
const transport = require('../lib/transport.js');
const { createSession } = require('../lib/session.js');
const index = require('../index.js');

const root = new URL('../', import.meta.url);
const libFiles = readdirSync(new URL('lib/', root))
  .filter((f) => f.endsWith('.js'))
  .map((f) => 'lib/' + f);

describe('the published files', () => {
  test('index.js and lib/ share one AuthError', () => {
    assert.equal(index.AuthError, AuthError);
  });

  test('lib/*.js keep to syntax older mini-program engines parse', () => {
    assert.ok(libFiles.length >= 4, `lib/ files: ${libFiles}`);
    for (const f of libFiles) {
      const code = readFileSync(new URL(f, root), 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
      assert.ok(code.includes('module.exports'), `${f}: comment stripping ate the code`);
      assert.deepEqual(code.match(/,\s*\)/g), null, `${f}: trailing comma before )`);
      assert.deepEqual(code.match(/\?\.|\?\?|\.\.\./g), null, `${f}: optional chaining, ?? or spread`);
      assert.deepEqual(code.match(/\b(import|export)\b|\basync\b|\bawait\b/g), null, `${f}: not plain CommonJS`);
    }
  });

  test('every module index.js requires exists, names its .js and is in package.json "files"', () => {
    const pkg = JSON.parse(readFileSync(new URL('package.json', root), 'utf8'));
    const published = (path) => pkg.files.some((f) => (f.endsWith('/') ? path.startsWith(f) : path === f));
    const seen = new Set();
    const visit = (file) => {
      if (seen.has(file)) return;
      seen.add(file);
      assert.ok(existsSync(new URL(file, root)), `${file} is required but missing`);
      assert.ok(published(file), `${file} is required but not in package.json "files"`);
      const dir = file.includes('/') ? file.slice(0, file.lastIndexOf('/') + 1) : '';
      const code = readFileSync(new URL(file, root), 'utf8');
      for (const [, spec] of code.matchAll(/require\('([^']+)'\)/g)) {
        assert.match(spec, /^\.\.?\/.*\.js$/, `${file}: require('${spec}') is not a relative .js path`);
        visit(new URL(spec, new URL(dir, 'file:///')).pathname.slice(1));
      }
    };
    visit('index.js');
    assert.deepEqual([...seen].filter((f) => f.startsWith('lib/')).sort(), [...libFiles].sort(), 'unused lib/ files');
  });
});

/** A platform API holding storage in a Map; `failing` makes every storage call throw. */
function fakeStorageApi(initial = {}, failing = false) {
  const map = new Map(Object.entries(initial));
  const guard = () => {
    if (failing) throw new Error('storage broken');
  };
  return {
    map,
    getStorageSync: (k) => (guard(), map.has(k) ? map.get(k) : ''),
    setStorageSync: (k, v) => (guard(), map.set(k, v)),
    removeStorageSync: (k) => (guard(), map.delete(k)),
  };
}

const TOKENS = { access_token: 'at.1', refresh_token: 'rt.1' };

describe('storage', () => {
  test('createStore loads a record once (object or JSON string) and writes every change through', () => {
    const api = fakeStorageApi({ k: TOKENS, s: JSON.stringify(TOKENS) });
    const store = storage.createStore(api, 'k');
    assert.equal(store.get(), TOKENS);
    assert.equal(store.get(), store.get(), 'the same object until it changes');
    assert.deepEqual(storage.createStore(api, 's').get(), TOKENS);
    const next = { access_token: 'at.2', refresh_token: 'rt.2' };
    store.set(next);
    assert.equal(store.get(), next);
    assert.equal(api.map.get('k'), next);
    store.clear();
    assert.equal(store.get(), null);
    assert.equal(api.map.has('k'), false);
  });

  test('createStore ignores unusable records and survives a failing or missing storage', () => {
    for (const raw of ['', 'not json', '"x"', { access_token: 'at' }, { access_token: 1, refresh_token: 'r' }]) {
      assert.equal(storage.createStore(fakeStorageApi({ k: raw }), 'k').get(), null, JSON.stringify(raw));
    }
    const broken = storage.createStore(fakeStorageApi({ k: TOKENS }, true), 'k');
    assert.equal(broken.get(), null);
    broken.set(TOKENS);
    assert.equal(broken.get(), TOKENS, 'kept in memory');
    broken.clear();
    assert.equal(broken.get(), null);
    const none = storage.createStore({}, 'k');
    none.set(TOKENS);
    assert.equal(none.get(), TOKENS);
  });

  test('createPendingStore: pending logouts under their own key, written through, bounded, unusable ones dropped', () => {
    const p1 = storage.pendingFrom({ ...TOKENS, expires_in: 600, expires_at: 5, refresh_expires_at: 9 }, 1);
    assert.deepEqual(p1, {
      access_token: 'at.1',
      refresh_token: 'rt.1',
      expires_in: 600,
      expires_at: 5,
      refresh_expires_at: 9,
      since: 1,
    });
    const api = fakeStorageApi({ j: JSON.stringify([p1, { access_token: 'x' }, null]), k: 'not json' });
    assert.deepEqual(storage.createPendingStore(api, 'j').list(), [p1]);
    const pend = storage.createPendingStore(api, 'k');
    assert.deepEqual(pend.list(), []);
    pend.add(p1);
    assert.deepEqual(api.map.get('k'), [p1]);
    const p2 = { ...p1, access_token: 'at.2' };
    assert.equal(pend.replace(p1, p2), true);
    assert.equal(pend.replace(p1, p2), false, 'p1 is no longer there');
    assert.deepEqual(api.map.get('k'), [p2]);
    pend.remove(p2);
    assert.equal(api.map.has('k'), false, 'the key goes with the last one');
    for (let i = 0; i < storage.MAX_PENDING_LOGOUTS + 2; i++) pend.add({ ...p1, access_token: `at.${i}` });
    const kept = pend.list();
    assert.equal(kept.length, storage.MAX_PENDING_LOGOUTS);
    assert.equal(kept[kept.length - 1].access_token, `at.${storage.MAX_PENDING_LOGOUTS + 1}`, 'the newest are kept');
    const broken = storage.createPendingStore(fakeStorageApi({}, true), 'k');
    broken.add(p1);
    assert.deepEqual(broken.list(), [p1], 'kept in memory');
    const memory = storage.createPendingStore(null, '');
    memory.add(p1);
    assert.deepEqual(memory.list(), [p1]);
  });

  test('recordFrom: lifetimes from the send time, gaps filled from the previous record', () => {
    const r = storage.recordFrom(
      { ...TOKENS, expires_in: 600, refresh_expires_in: 3600, openid: 'o', unionid: 'u', phone_bound: false },
      1000,
      null,
    );
    assert.deepEqual(r, {
      access_token: 'at.1',
      token_type: 'Bearer',
      expires_in: 600,
      expires_at: 601_000,
      refresh_token: 'rt.1',
      refresh_expires_at: 3_601_000,
      openid: 'o',
      phone_bound: false,
      unionid: 'u',
    });
    const next = storage.recordFrom({ access_token: 'at.2', phone_bound: true }, 5000, r);
    assert.equal(next.refresh_token, 'rt.1');
    assert.equal(next.refresh_expires_at, 3_601_000);
    assert.equal(next.expires_in, 0);
    assert.equal(next.openid, 'o');
    assert.equal(next.unionid, 'u');
    assert.equal(next.phone_bound, true);
    assert.equal('unionid' in storage.recordFrom(TOKENS, 0, null), false);
  });

  test('recordFrom rejects an answer without tokens as bad_response', () => {
    for (const [body, prev] of [
      [null, null],
      [{ refresh_token: 'rt' }, null],
      [{ access_token: '' }, TOKENS],
      [{ access_token: 'at' }, null],
    ]) {
      assert.throws(
        () => storage.recordFrom(body, 0, prev),
        (e) => e instanceof AuthError && e.code === 'bad_response',
      );
    }
  });

  test('accessExpired: margin before expiry, never more than half the lifetime; unknown lifetime never expires', () => {
    const t = { expires_in: 600, expires_at: 600_000 };
    assert.equal(
      storage.accessExpired(t, () => 569_999, 30),
      false,
    );
    assert.equal(
      storage.accessExpired(t, () => 570_000, 30),
      true,
    );
    const short = { expires_in: 20, expires_at: 20_000 };
    assert.equal(
      storage.accessExpired(short, () => 9_999, 30),
      false,
    );
    assert.equal(
      storage.accessExpired(short, () => 10_000, 30),
      true,
    );
    assert.equal(
      storage.accessExpired({ expires_in: 0, expires_at: 0 }, () => 1e15, 30),
      false,
    );
  });

  test('refreshExpired and frozenCopy', () => {
    assert.equal(
      storage.refreshExpired({ refresh_expires_at: 100 }, () => 99),
      false,
    );
    assert.equal(
      storage.refreshExpired({ refresh_expires_at: 100 }, () => 100),
      true,
    );
    assert.equal(
      storage.refreshExpired({ refresh_expires_at: 0 }, () => 1e15),
      false,
    );
    const c = storage.frozenCopy(TOKENS);
    assert.ok(Object.isFrozen(c));
    assert.notEqual(c, TOKENS);
    assert.deepEqual(c, TOKENS);
    assert.equal(storage.frozenCopy(null), null);
  });
});

/** A worker-style response. */
function res(statusCode, data, header = {}) {
  return { statusCode, data, header };
}
const EDGE = { 'X-WX-Edge-Error': '1' };

describe('transport: reading answers', () => {
  test('bodyOf parses JSON strings and ignores anything else', () => {
    assert.deepEqual(transport.bodyOf(res(200, '{"a":1}')), { a: 1 });
    assert.deepEqual(transport.bodyOf(res(200, { a: 1 })), { a: 1 });
    assert.equal(transport.bodyOf(res(200, 'nope')), null);
    assert.equal(transport.bodyOf(res(200, 7)), null);
    assert.equal(transport.bodyOf(res(204, undefined)), null);
  });

  test('isOk and headerOf (any case, header or headers)', () => {
    assert.equal(transport.isOk(res(204)), true);
    assert.equal(transport.isOk(res(301)), false);
    assert.equal(transport.headerOf(res(200, null, { 'Retry-After': '3' }), 'retry-after'), '3');
    assert.equal(transport.headerOf({ headers: { 'retry-after': 3 } }, 'retry-after'), 3);
    assert.equal(transport.headerOf({}, 'retry-after'), undefined);
  });

  test('retryAfterOf: delta-seconds or an HTTP date against the clock; null when unreadable', () => {
    const now = () => Date.parse('2026-01-01T00:00:00Z');
    const ra = (v) => transport.retryAfterOf(res(429, null, v === undefined ? {} : { 'retry-after': v }), now);
    assert.equal(ra('5'), 5);
    assert.equal(ra(' 7 '), 7);
    assert.equal(ra(2), 2);
    assert.equal(ra('Thu, 01 Jan 2026 00:00:04 GMT'), 4);
    assert.equal(ra('Wed, 31 Dec 2025 23:00:00 GMT'), 0);
    assert.equal(ra('-1'), null);
    assert.equal(ra('soon'), null);
    assert.equal(ra(undefined), null);
  });

  test("errorFrom: the worker's error body, or bad_response", () => {
    const e = transport.errorFrom(
      res(429, { error: 'rate_limited', message: 'slow down', wechat_errcode: 45011 }, { 'Retry-After': '9' }),
      '/auth/login',
      () => 0,
    );
    assert.ok(e instanceof AuthError);
    assert.equal(e.code, 'rate_limited');
    assert.equal(e.message, 'slow down');
    assert.equal(e.statusCode, 429);
    assert.equal(e.wechatErrcode, 45011);
    assert.equal(e.retryAfter, 9);
    const bare = transport.errorFrom(res(500, 'oops'), '/auth/login', () => 0);
    assert.equal(bare.code, 'bad_response');
    assert.equal(bare.message, '/auth/login answered HTTP 500 without an error body');
    assert.equal('retryAfter' in bare, false);
  });

  test("renewableCode and retryable: only the worker's own marked answers", () => {
    const expired = { error: 'token_expired', message: 'm' };
    assert.equal(transport.renewableCode(res(401, expired, EDGE)), 'token_expired');
    assert.equal(transport.renewableCode(res(401, expired)), null, 'no marker: the origin');
    assert.equal(transport.renewableCode(res(401, { error: 'refresh_reused', message: 'm' }, EDGE)), null);
    assert.equal(transport.renewableCode(res(403, expired, EDGE)), null);
    assert.equal(transport.retryable(res(429, { error: 'rate_limited' }, EDGE)), true);
    assert.equal(transport.retryable(res(503, { error: 'store_unavailable' }, EDGE)), true);
    assert.equal(transport.retryable(res(503, { error: 'rate_limited' }, EDGE)), false);
    assert.equal(transport.retryable(res(429, { error: 'rate_limited' })), false);
  });

  test('resolveUrl: paths join the base; absolute URLs only under it', () => {
    const base = 'https://edge.example.com';
    assert.equal(transport.resolveUrl(base, '/api/x'), base + '/api/x');
    assert.equal(transport.resolveUrl(base, 'api/x'), base + '/api/x');
    assert.equal(transport.resolveUrl(base, 'HTTPS://EDGE.example.com/a'), 'HTTPS://EDGE.example.com/a');
    assert.equal(transport.resolveUrl(base, base + '?q=1'), base + '?q=1');
    assert.throws(() => transport.resolveUrl(base, 'https://edge.example.com.evil.com/'), TypeError);
    assert.throws(() => transport.resolveUrl(base, ''), TypeError);
  });
});

describe('transport: calls', () => {
  test('invoke: callbacks or a returned promise, the first outcome wins, a late rejection is consumed', async () => {
    const api = {
      cb: (o) => o.success('cb'),
      promise: () => Promise.resolve('p'),
      both: (o) => {
        o.success('first');
        return Promise.reject(new Error('late'));
      },
      throws: () => {
        throw new Error('boom');
      },
    };
    assert.equal(await transport.invoke(api, 'cb', {}), 'cb');
    assert.equal(await transport.invoke(api, 'promise', {}), 'p');
    assert.equal(await transport.invoke(api, 'both', {}), 'first');
    await assert.rejects(transport.invoke(api, 'throws', {}), /boom/);
  });

  /** A transport over a scripted wx: `answers` are returned by wx.request in order. */
  function scripted(answers, extra = {}) {
    const sent = [];
    const waits = [];
    const api = {
      login: (o) => o.success({ code: 'c' }),
      request: (o) => {
        sent.push(o);
        const a = answers.shift();
        if (a instanceof Error) o.fail({ errMsg: a.message });
        else o.success(a);
      },
    };
    const t = transport.createTransport({
      api,
      base: 'https://edge.example.com',
      now: () => 0,
      sleep: (ms) => (waits.push(ms), Promise.resolve()),
      maxRetryWait: 10,
      ...extra,
    });
    return { t, sent, waits };
  }

  test('callWorker: JSON body and bearer token to the base URL; a fail callback is network_error', async () => {
    const { t, sent } = scripted([res(200, {}), new Error('request:fail timeout')]);
    await t.callWorker('POST', '/auth/phone', { code: 'x' }, 'at.1');
    assert.deepEqual(sent[0].header, { 'Content-Type': 'application/json', Authorization: 'Bearer at.1' });
    assert.equal(sent[0].url, 'https://edge.example.com/auth/phone');
    assert.deepEqual(sent[0].data, { code: 'x' });
    await assert.rejects(t.callWorker('GET', '/auth/session'), (e) => {
      assert.equal(e.code, 'network_error');
      assert.equal(e.errMsg, 'request:fail timeout');
      return true;
    });
    assert.equal('data' in sent[1], false);
    assert.deepEqual(sent[1].header, {});
  });

  test("withRetry: waits the worker's Retry-After (capped), sends once more; twice busy rejects", async () => {
    const busy = (after) => res(429, { error: 'rate_limited', message: 'm' }, { ...EDGE, 'Retry-After': after });
    const a = scripted([busy('3'), res(200, 'ok')]);
    const r = await a.t.withRetry(() => a.t.send({ url: 'u' }));
    assert.equal(r.data, 'ok');
    assert.deepEqual(a.waits, [3000]);

    const b = scripted([busy('60'), busy('60')]);
    await assert.rejects(
      b.t.withRetry(() => b.t.send({ url: 'u' })),
      (e) => e.code === 'rate_limited' && e.retryAfter === 60,
    );
    assert.deepEqual(b.waits, [10_000]);

    const c = scripted([res(429, { error: 'rate_limited' }), res(200, 'ok')]);
    assert.equal((await c.t.withRetry(() => c.t.send({ url: 'u' }))).statusCode, 429, "an origin's 429 is kept");
    assert.deepEqual(c.waits, []);
  });

  test('wxLogin: the code, or wx_login_failed', async () => {
    const ok = transport.createTransport({ api: { login: (o) => o.success({ code: 'c1' }) } });
    assert.equal(await ok.wxLogin(), 'c1');
    const none = transport.createTransport({ api: { login: (o) => o.success({ errMsg: 'login:ok' }) } });
    await assert.rejects(none.wxLogin(), (e) => e.code === 'wx_login_failed' && e.errMsg === 'login:ok');
    const fail = transport.createTransport({ api: { login: (o) => o.fail({ errMsg: 'login:fail' }) } });
    await assert.rejects(fail.wxLogin(), (e) => e.code === 'wx_login_failed' && e.errMsg === 'login:fail');
  });
});

describe('session', () => {
  /**
   * A session over an in-memory store and a fake transport whose worker
   * answers through `handlers[path]`; each login hands out tokens at.N / rt.N.
   */
  function fakeSession(handlers = {}) {
    const store = storage.createStore(fakeStorageApi(), 'k');
    const calls = [];
    let n = 0;
    const tokens = () => {
      n += 1;
      return res(200, { access_token: `at.${n}`, refresh_token: `rt.${n}`, expires_in: 600 });
    };
    const net = {
      wxLogin: () => Promise.resolve('code'),
      withRetry: (attempt) => attempt(),
      errorFrom: (r, what) => transport.errorFrom(r, what, () => 0),
      callWorker: (method, path, data, access) => {
        calls.push({ path, data, access });
        const h = handlers[path];
        return Promise.resolve(h ? h(data, access) : path === '/auth/login' ? tokens() : res(200, {}));
      },
    };
    const session = createSession({ store, transport: net, now: () => 0, margin: 30 });
    return { session, store, calls, tokens };
  }

  test('concurrent callers share one login', async () => {
    const { session, calls } = fakeSession();
    const [a, b] = await Promise.all([session.usable(true), session.usable(true)]);
    assert.equal(a, b);
    assert.equal(calls.filter((c) => c.path === '/auth/login').length, 1);
    assert.equal(session.isLoggedIn(), true);
    assert.equal(await session.usable(false), a, 'stored tokens are used as they are');
  });

  test('without tokens and without leave to log in: not_logged_in, no request', async () => {
    const { session, calls } = fakeSession();
    await assert.rejects(session.usable(false), (e) => e.code === 'not_logged_in');
    assert.deepEqual(calls, []);
  });

  test('logout waits for the login in flight, then logs that session out', async () => {
    const f = fakeSession();
    const login = f.session.login();
    await f.session.logout();
    assert.equal((await login).access_token, 'at.1');
    assert.deepEqual(
      f.calls.map((c) => [c.path, c.access]),
      [
        ['/auth/login', undefined],
        ['/auth/logout', 'at.1'],
      ],
    );
    assert.equal(f.store.get(), null);
  });

  test('a login started while logout is in flight is a new session: kept, and the old one is logged out', async () => {
    let releaseLogout, releaseLogin;
    const logoutGate = new Promise((r) => (releaseLogout = r));
    const loginGate = new Promise((r) => (releaseLogin = r));
    let logins = 0;
    const f = fakeSession({
      '/auth/logout': () => logoutGate.then(() => res(200, {})),
      '/auth/login': () => (++logins === 1 ? f.tokens() : loginGate.then(() => f.tokens())),
    });
    await f.session.login();
    const out = f.session.logout();
    await new Promise((r) => setTimeout(r, 0));
    const relogin = f.session.login();
    releaseLogout();
    await out;
    releaseLogin();
    assert.equal((await relogin).access_token, 'at.2');
    assert.equal(f.store.get().access_token, 'at.2');
    assert.equal(f.session.hasPendingLogout(), false);
    assert.deepEqual(
      f.calls.filter((c) => c.path === '/auth/logout').map((c) => c.access),
      ['at.1'],
    );
  });

  test('a login refused because logout() ended its session meanwhile is logged out too', async () => {
    let releaseRefresh, releaseLogin;
    const refreshGate = new Promise((r) => (releaseRefresh = r));
    const loginGate = new Promise((r) => (releaseLogin = r));
    let logins = 0;
    const f = fakeSession({
      '/auth/refresh': () => refreshGate.then(() => res(200, { access_token: 'at.r', expires_in: 600 })),
      '/auth/login': () => (++logins === 1 ? f.tokens() : loginGate.then(() => f.tokens())),
    });
    await f.session.login();
    const expired = res(401, { error: 'token_expired', message: 'm' }, EDGE);
    const call = f.session.withToken(() => Promise.resolve(expired), false).catch(() => {});
    await new Promise((r) => setTimeout(r, 0));
    const out = f.session.logout(); // waits for the refresh in flight
    const relogin = f.session.login(); // starts before logout() ends the session
    releaseRefresh();
    await out;
    await call;
    releaseLogin();
    await assert.rejects(relogin, (e) => e instanceof AuthError && e.code === 'logged_out');
    for (let i = 0; i < 20 && f.session.hasPendingLogout(); i++) await new Promise((r) => setTimeout(r, 0));
    assert.equal(f.session.hasPendingLogout(), false);
    assert.deepEqual(
      f.calls.filter((c) => c.path === '/auth/logout').map((c) => c.access),
      ['at.r', 'at.2'],
      'the refreshed session, then the one the refused login created',
    );
    assert.equal(f.store.get(), null);
  });

  test('storeUnlessLoggedOut keeps a response only within the epoch it was taken in', async () => {
    const { session, store } = fakeSession();
    const keep = session.storeUnlessLoggedOut();
    assert.equal(keep(TOKENS, 0, null), store.get());
    const stale = session.storeUnlessLoggedOut();
    await session.logout();
    assert.throws(
      () => stale(TOKENS, 0, null),
      (e) => e.code === 'logged_out',
    );
    assert.equal(store.get(), null);
  });

  test('a renewable 401 refreshes and sends once more with the new token', async () => {
    const f = fakeSession({
      '/auth/refresh': () => res(200, { access_token: 'at.fresh', expires_in: 600 }),
    });
    await f.session.login();
    const seen = [];
    const r = await f.session.withToken((access) => {
      seen.push(access);
      return Promise.resolve(
        seen.length === 1 ? res(401, { error: 'token_expired', message: 'm' }, EDGE) : res(200, 'ok'),
      );
    }, false);
    assert.equal(r.data, 'ok');
    assert.deepEqual(seen, ['at.1', 'at.fresh']);
    assert.equal(f.store.get().refresh_token, 'rt.1', 'the refresh kept the refresh token');
  });

  test('a dead refresh token clears the tokens and, when allowed, logs in again', async () => {
    const dead = () => res(401, { error: 'refresh_reused', message: 'm' }, EDGE);
    const f = fakeSession({ '/auth/refresh': dead });
    await f.session.login();
    const expired = res(401, { error: 'token_expired', message: 'm' }, EDGE);
    await assert.rejects(
      f.session.withToken(() => Promise.resolve(expired), false),
      (e) => e.code === 'refresh_reused',
    );
    assert.equal(f.store.get(), null);

    await f.session.login();
    let sends = 0;
    const r = await f.session.withToken(() => Promise.resolve(++sends === 1 ? expired : res(200, 'ok')), true);
    assert.equal(r.data, 'ok');
    assert.equal(f.store.get().access_token, 'at.3', 'a fresh login');
  });
});
