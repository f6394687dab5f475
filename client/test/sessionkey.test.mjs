// ensureSessionKey (issue 19) against the in-process fake worker and the
// fake wx: wx.checkSession, and when it fails a wx.login code sent to
// POST /auth/session/rekey through the authorised path; the legacy
// bindPhone re-keys before it sends encryptedData.
//
// Run: node --test client/test/sessionkey.test.mjs

import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';

import { createAuth, AuthError } from '../index.mjs';
import { createFakeWx } from './support/fake-wx.mjs';
import { startFakeWorker } from './support/fake-worker.mjs';

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
  worker.delay = {};
  worker.fail = {};
});

let users = 0;
/** A client for a user of its own (codes `${user}.N`). */
function setup(wxOptions = {}) {
  users += 1;
  const user = `key${users}`;
  const wx = createFakeWx({ user, ...wxOptions });
  const auth = createAuth({ baseUrl: worker.url, api: wx, sleep: async () => {} });
  return { user, wx, auth };
}

async function rejectsWith(promise, code, check) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof AuthError, `expected AuthError, got ${e && e.stack}`);
    assert.equal(e.code, code, `code: ${e.message}`);
    if (check) check(e);
    return true;
  });
}

const rekeys = () => worker.requests.filter((r) => r.path === '/auth/session/rekey');

describe('ensureSessionKey', () => {
  test('wx.checkSession succeeds: resolves false, no wx.login, no request', async () => {
    const { wx, auth } = setup();
    await auth.login();
    worker.resetCounts();
    assert.equal(await auth.ensureSessionKey(), false);
    assert.equal(wx.checks, 1);
    assert.equal(wx.logins, 1, 'only the first login');
    assert.equal(worker.requests.length, 0);
  });

  test('wx.checkSession fails: wx.login, POST /auth/session/rekey {code} with the bearer token; a legacy phone sealed afterwards binds', async () => {
    const { user, wx, auth } = setup();
    const t = await auth.login();
    worker.rotateWechatKey(user);
    wx.sessionValid = false;
    worker.resetCounts();
    assert.equal(await auth.ensureSessionKey(), true);
    assert.equal(wx.logins, 2);
    const [r] = rekeys();
    assert.equal(r.method, 'POST');
    assert.equal(r.headers.authorization, `Bearer ${t.access_token}`);
    assert.match(r.headers['content-type'], /^application\/json/);
    assert.deepEqual(JSON.parse(r.body), { code: `${user}.${r.body.match(/\.(\d+)"/)[1]}` });
    assert.equal(worker.count('/auth/login'), 0, 'a re-key is not a login');
    assert.deepEqual(auth.tokens(), t, 'the tokens are unchanged');
    // The worker now holds WeChat's current key.
    const out = await auth.bindPhone(worker.encryptPhone(user, '13800138000'));
    assert.equal(out.purePhoneNumber, '13800138000');
    assert.equal(rekeys().length, 1, 'wx.login made the session valid again: no second re-key');
  });

  test('concurrent callers share one check and one re-key', async () => {
    const { user, wx, auth } = setup();
    await auth.login();
    worker.rotateWechatKey(user);
    wx.sessionValid = false;
    worker.resetCounts();
    worker.delay['/auth/session/rekey'] = 50;
    const results = await Promise.all([1, 2, 3, 4, 5].map(() => auth.ensureSessionKey()));
    assert.deepEqual(results, [true, true, true, true, true]);
    assert.equal(wx.checks, 1);
    assert.equal(wx.logins, 2);
    assert.equal(rekeys().length, 1);
    // Once settled, a later call checks again.
    assert.equal(await auth.ensureSessionKey(), false);
    assert.equal(wx.checks, 2);
  });

  test("the worker's 401 token_expired: refresh, then a re-key with a NEW wx.login code", async () => {
    const { wx, auth } = setup();
    await auth.login();
    wx.sessionValid = false;
    worker.expireAccessTokens();
    worker.resetCounts();
    assert.equal(await auth.ensureSessionKey(), true);
    assert.equal(worker.count('/auth/refresh'), 1);
    const sent = rekeys().map((r) => JSON.parse(r.body).code);
    assert.equal(sent.length, 2);
    assert.notEqual(sent[0], sent[1], 'a code is never sent twice');
    assert.equal(wx.logins, 3);
  });

  test("the worker's 503: waits, then a re-key with a new code", async () => {
    const { wx, auth } = setup();
    await auth.login();
    wx.sessionValid = false;
    worker.resetCounts();
    worker.fail['/auth/session/rekey'] = worker.workerError(503, 'store_unavailable', { 'Retry-After': '1' });
    assert.equal(await auth.ensureSessionKey(), true);
    const sent = rekeys().map((r) => JSON.parse(r.body || '{}').code);
    assert.equal(sent.length, 2);
    assert.notEqual(sent[0], sent[1]);
  });

  test('409 openid_mismatch (another WeChat user on this device): rejects, the session is kept', async () => {
    let who = 'owner';
    let n = 0;
    const wx = createFakeWx({ codes: () => `${who}.m${(n += 1)}` });
    const auth = createAuth({ baseUrl: worker.url, api: wx });
    const t = await auth.login();
    who = 'intruder'; // WeChat on this device is now someone else's
    wx.sessionValid = false;
    await rejectsWith(auth.ensureSessionKey(), 'openid_mismatch', (e) => {
      assert.equal(e.statusCode, 409);
      assert.match(e.message, /another WeChat user/);
    });
    assert.deepEqual(auth.tokens(), t);
    assert.equal(auth.isLoggedIn(), true);
  });

  test('wx.login failing rejects wx_login_failed, and nothing is sent', async () => {
    const { wx, auth } = setup();
    await auth.login();
    wx.sessionValid = false;
    wx.loginFails = 'login:fail network';
    worker.resetCounts();
    await rejectsWith(auth.ensureSessionKey(), 'wx_login_failed');
    assert.equal(rekeys().length, 0);
  });

  test('without a session it logs in (a login brings a fresh key) and re-keys nothing', async () => {
    const { wx, auth } = setup();
    assert.equal(await auth.ensureSessionKey(), true);
    assert.equal(wx.logins, 1);
    assert.equal(worker.count('/auth/login'), 1);
    assert.equal(rekeys().length, 0);
    assert.equal(wx.checks, 0);
    assert.equal(auth.isLoggedIn(), true);
  });

  test('a platform without wx.checkSession (an H5 build): resolves false, nothing sent', async () => {
    const { wx, auth } = setup({ noCheckSession: true });
    await auth.login();
    worker.resetCounts();
    assert.equal(await auth.ensureSessionKey(), false);
    assert.equal(wx.logins, 1);
    assert.equal(worker.requests.length, 0);
  });

  test('works with a promise-style platform (Taro) and its failing checkSession promise', async () => {
    const { user, wx, auth } = setup({ style: 'taro' });
    await auth.login();
    worker.rotateWechatKey(user);
    wx.sessionValid = false;
    assert.equal(await auth.ensureSessionKey(), true);
    assert.equal(rekeys().length, 1);
  });
});

describe('bindPhone, legacy path, and the session key', () => {
  test('wx.checkSession fails: re-key first, then POST /auth/phone; data sealed with WeChat current key binds', async () => {
    const { user, wx, auth } = setup();
    await auth.login();
    // WeChat let the worker's key go, and sealed the phone with its current one.
    worker.rotateWechatKey(user);
    wx.sessionValid = false;
    const enc = worker.encryptPhone(user, '13900139000');
    worker.resetCounts();
    const out = await auth.bindPhone({ ...enc, errMsg: 'getPhoneNumber:ok' });
    assert.equal(out.purePhoneNumber, '13900139000');
    assert.deepEqual(
      worker.requests.map((r) => r.path),
      ['/auth/session/rekey', '/auth/phone'],
    );
  });

  test('wx.checkSession succeeds: no re-key, no wx.login (the pitfall stays avoided)', async () => {
    const { user, wx, auth } = setup();
    await auth.login();
    const enc = worker.encryptPhone(user, '13700137000');
    worker.resetCounts();
    await auth.bindPhone(enc);
    assert.equal(wx.checks, 1);
    assert.equal(wx.logins, 1);
    assert.deepEqual(
      worker.requests.map((r) => r.path),
      ['/auth/phone'],
    );
  });

  test('the code path never checks the session key', async () => {
    const { wx, auth } = setup();
    await auth.login();
    wx.sessionValid = false;
    await auth.bindPhone({ code: 'phone-13600136000' });
    assert.equal(wx.checks, 0);
    assert.equal(rekeys().length, 0);
  });

  test('without a session: not_logged_in, no wx.checkSession, no wx.login', async () => {
    const { wx, auth } = setup();
    wx.sessionValid = false;
    await rejectsWith(auth.bindPhone({ encryptedData: 'abc', iv: 'def' }), 'not_logged_in');
    assert.equal(wx.checks, 0);
    assert.equal(wx.logins, 0);
  });

  test('a failed re-key rejects before the phone data is sent', async () => {
    const { wx, auth } = setup();
    await auth.login();
    wx.sessionValid = false;
    worker.resetCounts();
    worker.fail['/auth/session/rekey'] = worker.workerError(502, 'wechat_unavailable');
    await rejectsWith(auth.bindPhone({ encryptedData: 'abc', iv: 'def' }), 'wechat_unavailable');
    assert.equal(worker.count('/auth/phone'), 0);
  });
});
