// Tests of the dev/test doubles in this folder: the WeChat API simulator
// (wechat-sim.mjs) and the echo origin (echo-origin.mjs), over real HTTP on
// 127.0.0.1. Run with `node --test tests/support/`.

import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { createDecipheriv, createHash, createHmac } from 'node:crypto';
import { inflateSync } from 'node:zlib';
import { request as httpRequest } from 'node:http';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

import { startWechatSim, loginSignature, pngFor } from './wechat-sim.mjs';
import { startEchoOrigin } from './echo-origin.mjs';

const APPID = 'wxd930ea5d5a258f4f';
const SECRET = 'sim-test-secret-0123456789abcdef';
const RID = /, rid: [0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}$/;

// ---- helpers ---------------------------------------------------------------

/** GET code2Session with the right parameters unless overridden. */
async function code2session(sim, code, overrides = {}, init = {}) {
  const params = new URLSearchParams({
    appid: APPID,
    secret: SECRET,
    js_code: code,
    grant_type: 'authorization_code',
    ...overrides,
  });
  for (const [k, v] of Object.entries(overrides)) if (v === undefined) params.delete(k);
  return fetch(`${sim.url}/sns/jscode2session?${params}`, init);
}

/** Read a WeChat-style reply: HTTP 200, text/plain, JSON body. */
async function wechatJson(res) {
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'text/plain');
  return JSON.parse(await res.text());
}

async function login(sim, code) {
  return wechatJson(await code2session(sim, code));
}

async function stableToken(sim, body = {}) {
  const res = await fetch(`${sim.url}/cgi-bin/stable_token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      grant_type: 'client_credential',
      appid: APPID,
      secret: SECRET,
      force_refresh: false,
      ...body,
    }),
  });
  return wechatJson(res);
}

async function phoneNumber(sim, token, body) {
  const q = token === undefined ? '' : `?access_token=${encodeURIComponent(token)}`;
  const res = await fetch(`${sim.url}/wxa/business/getuserphonenumber${q}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return wechatJson(res);
}

/** GET a session-key API (checksession, resetusersessionkey) with the right parameters unless overridden. */
async function signedGet(sim, api, { token, openid, key, ...overrides }) {
  const params = new URLSearchParams({
    access_token: token,
    openid,
    signature: createHmac('sha256', key).update('').digest('hex'),
    sig_method: 'hmac_sha256',
    ...overrides,
  });
  for (const [k, v] of Object.entries(overrides)) if (v === undefined) params.delete(k);
  return wechatJson(await fetch(`${sim.url}/wxa/${api}?${params}`));
}

async function postJson(sim, path, token, body, headers = {}) {
  const q = token === undefined ? '' : `?access_token=${encodeURIComponent(token)}`;
  return fetch(`${sim.url}${path}${q}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

function expectedId(prefix, kind, user) {
  return prefix + createHash('sha256').update(`${kind}:${APPID}:${user}`).digest('base64url').slice(0, 27);
}

/** AES-128-CBC + strict PKCS#7, as the worker must do it. */
function decrypt(sessionKey, { encryptedData, iv }) {
  const d = createDecipheriv('aes-128-cbc', Buffer.from(sessionKey, 'base64'), Buffer.from(iv, 'base64'));
  return Buffer.concat([d.update(Buffer.from(encryptedData, 'base64')), d.final()]).toString('utf8');
}

/** Start a CLI, return its child process and the URL it prints as its first stdout line. */
async function startCli(script, args) {
  const child = spawn(process.execPath, [fileURLToPath(new URL(script, import.meta.url)), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.setEncoding('utf8');
  for await (const chunk of child.stdout) {
    out += chunk;
    if (out.includes('\n')) break;
  }
  return { child, url: out.split('\n')[0].trim() };
}

async function stopCli(child) {
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const [code, signal] = await exited;
  return { code, signal };
}

// ---- WeChat simulator ------------------------------------------------------

describe('wechat-sim', () => {
  let sim;
  before(async () => {
    sim = await startWechatSim({ appid: APPID, secret: SECRET });
  });
  after(() => sim.close());
  beforeEach(() => sim.reset());

  test('requires appid and secret', async () => {
    await assert.rejects(startWechatSim({ secret: SECRET }), TypeError);
    await assert.rejects(startWechatSim({ appid: APPID }), TypeError);
  });

  test('url and port describe the listening socket', () => {
    assert.match(sim.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(sim.url, `http://127.0.0.1:${sim.port}`);
  });

  describe('code2Session', () => {
    test('success: text/plain JSON with session_key, openid, unionid and no errcode', async () => {
      const body = await login(sim, 'alice.1');
      assert.deepEqual(Object.keys(body).sort(), ['openid', 'session_key', 'unionid']);
      assert.equal(Buffer.from(body.session_key, 'base64').length, 16);
      assert.equal(body.openid, expectedId('o', 'openid', 'alice'));
      assert.equal(body.unionid, expectedId('u', 'unionid', 'alice'));
      assert.equal(body.openid.length, 28);
      assert.equal(sim.sessionKeyOf('alice'), body.session_key);
    });

    test('the user is the part before the first dot; each login rotates session_key', async () => {
      const first = await login(sim, 'alice.1');
      const second = await login(sim, 'alice.2.x');
      assert.equal(second.openid, first.openid);
      assert.equal(second.unionid, first.unionid);
      assert.notEqual(second.session_key, first.session_key);
      assert.equal(sim.sessionKeyOf('alice'), second.session_key);
      const bob = await login(sim, 'bob');
      assert.notEqual(bob.openid, first.openid);
    });

    test('nounion users get no unionid', async () => {
      const body = await login(sim, 'nounion-carol.1');
      assert.equal(body.unionid, undefined);
      assert.equal(body.openid, expectedId('o', 'openid', 'nounion-carol'));
    });

    test('codes are single-use: 40163 on reuse', async () => {
      await login(sim, 'alice.1');
      const again = await login(sim, 'alice.1');
      assert.equal(again.errcode, 40163);
      assert.match(again.errmsg, /^code been used/);
      assert.match(again.errmsg, RID);
      assert.equal(again.session_key, undefined);
    });

    test('parameter errors: 40013, 40125, 40002, 41008', async () => {
      const cases = [
        [{ appid: 'wx1111111111111111' }, 40013],
        [{ secret: 'wrong' }, 40125],
        [{ grant_type: 'client_credential' }, 40002],
        [{ grant_type: undefined }, 40002],
        [{ js_code: undefined }, 41008],
        [{ js_code: '' }, 41008],
      ];
      for (const [overrides, errcode] of cases) {
        const body = await wechatJson(await code2session(sim, 'dave.1', overrides));
        assert.equal(body.errcode, errcode, JSON.stringify(overrides));
      }
      // None of these spent the code.
      assert.ok((await login(sim, 'dave.1')).session_key);
    });

    test('error triggers, and failed codes stay unused', async () => {
      for (const [code, errcode] of [
        ['invalid.1', 40029],
        ['blocked.1', 40226],
        ['ratelimit.1', 45011],
        ['busy.1', -1],
      ]) {
        for (let i = 0; i < 2; i++) {
          const body = await login(sim, code);
          assert.equal(body.errcode, errcode, code);
          assert.match(body.errmsg, RID);
        }
      }
      assert.equal(sim.sessionKeyOf('blocked'), undefined);
    });

    test('busyonce: -1 once for that code, then success, then 40163', async () => {
      assert.equal((await login(sim, 'busyonce.1')).errcode, -1);
      assert.ok((await login(sim, 'busyonce.1')).session_key);
      assert.equal((await login(sim, 'busyonce.1')).errcode, 40163);
      // A fresh code fails once again.
      assert.equal((await login(sim, 'busyonce.2')).errcode, -1);
    });

    test('http500once: HTML 500 once, then success; http500: always', async () => {
      let res = await code2session(sim, 'http500once.1');
      assert.equal(res.status, 500);
      assert.match(res.headers.get('content-type'), /^text\/html/);
      assert.match(await res.text(), /<html>/);
      assert.ok((await login(sim, 'http500once.1')).session_key);

      for (let i = 0; i < 2; i++) {
        res = await code2session(sim, 'http500.1');
        assert.equal(res.status, 500);
        await res.text();
      }
    });

    test('garbage: HTTP 200 with a non-JSON body', async () => {
      const res = await code2session(sim, 'garbage.1');
      assert.equal(res.status, 200);
      assert.equal(await res.text(), '<html>not json</html>');
    });

    test('slow: answers success after the delay', async () => {
      const quick = await startWechatSim({ appid: APPID, secret: SECRET, slowMs: 150 });
      try {
        const t0 = Date.now();
        const body = await login(quick, 'slow.1');
        assert.ok(Date.now() - t0 >= 140);
        assert.ok(body.session_key);
      } finally {
        await quick.close();
      }
    });

    test('slow (default 15 s): a client that times out gives up; the code is spent', async () => {
      await assert.rejects(code2session(sim, 'slow.1', {}, { signal: AbortSignal.timeout(150) }), {
        name: 'TimeoutError',
      });
      assert.equal(sim.stats().code2session, 1);
      assert.ok(sim.sessionKeyOf('slow'), 'session_key rotated when the request arrived');
      assert.equal((await login(sim, 'slow.1')).errcode, 40163);
    });
  });

  test('close() ends pending slow replies at once', async () => {
    const other = await startWechatSim({ appid: APPID, secret: SECRET });
    const pending = code2session(other, 'slow.1');
    await new Promise((r) => setTimeout(r, 50)); // let the request arrive
    const t0 = Date.now();
    await other.close();
    assert.ok(Date.now() - t0 < 1000);
    await assert.rejects(pending);
    await other.close(); // idempotent
  });

  describe('stable_token', () => {
    test('returns the same token with the remaining lifetime until force_refresh', async () => {
      const a = await stableToken(sim);
      assert.ok(a.access_token.length >= 64);
      assert.ok(a.expires_in > 7190 && a.expires_in <= 7200);
      assert.equal(a.errcode, undefined);
      const b = await stableToken(sim);
      assert.equal(b.access_token, a.access_token);

      const c = await stableToken(sim, { force_refresh: true });
      assert.notEqual(c.access_token, a.access_token);
      assert.equal((await stableToken(sim)).access_token, c.access_token);

      // The token replaced by the forced refresh no longer works.
      assert.equal((await phoneNumber(sim, a.access_token, { code: 'phone-1' })).errcode, 40001);
      assert.equal((await phoneNumber(sim, c.access_token, { code: 'phone-1' })).errcode, 0);

      const s = sim.stats();
      assert.equal(s.stable_token, 4);
      assert.equal(s.stable_token_force, 1);
    });

    test('wrong appid, secret or grant_type', async () => {
      assert.equal((await stableToken(sim, { appid: 'wx1111111111111111' })).errcode, 40013);
      assert.equal((await stableToken(sim, { secret: 'nope' })).errcode, 40125);
      assert.equal((await stableToken(sim, { grant_type: 'authorization_code' })).errcode, 40002);
      assert.equal(sim.stats().stable_token, 3);
    });

    test('a token expires after its lifetime', async () => {
      const short = await startWechatSim({ appid: APPID, secret: SECRET, tokenTtl: 0.15 });
      try {
        const a = await stableToken(short);
        assert.equal(a.expires_in, 1);
        await new Promise((r) => setTimeout(r, 200));
        assert.equal((await phoneNumber(short, a.access_token, { code: 'phone-1' })).errcode, 40001);
        const b = await stableToken(short);
        assert.notEqual(b.access_token, a.access_token);
      } finally {
        await short.close();
      }
    });

    test('the legacy /cgi-bin/token answers 40164', async () => {
      const body = await wechatJson(
        await fetch(`${sim.url}/cgi-bin/token?grant_type=client_credential&appid=${APPID}&secret=${SECRET}`),
      );
      assert.equal(body.errcode, 40164);
    });
  });

  describe('getuserphonenumber', () => {
    test('phone-, phonenum-, phoneforeign- codes', async () => {
      const { access_token: token } = await stableToken(sim);
      const before = Math.floor(Date.now() / 1000);

      const a = await phoneNumber(sim, token, { code: 'phone-13800138000', openid: 'oSomeone' });
      assert.equal(a.errcode, 0);
      assert.equal(a.errmsg, 'ok');
      assert.deepEqual(a.phone_info, {
        phoneNumber: '13800138000',
        purePhoneNumber: '13800138000',
        countryCode: '86',
        watermark: { timestamp: a.phone_info.watermark.timestamp, appid: APPID },
      });
      assert.ok(a.phone_info.watermark.timestamp >= before);

      const b = await phoneNumber(sim, token, { code: 'phonenum-13900139000' });
      assert.equal(b.phone_info.countryCode, 86);
      assert.equal(b.phone_info.purePhoneNumber, '13900139000');

      const c = await phoneNumber(sim, token, { code: 'phoneforeign-13700137000' });
      assert.equal(c.phone_info.watermark.appid, 'wx0000000000000000');
    });

    test('phone codes are single-use; unknown codes are 40029', async () => {
      const { access_token: token } = await stableToken(sim);
      assert.equal((await phoneNumber(sim, token, { code: 'phone-1' })).errcode, 0);
      assert.equal((await phoneNumber(sim, token, { code: 'phone-1' })).errcode, 40029);
      assert.equal((await phoneNumber(sim, token, { code: 'alice.1' })).errcode, 40029);
      assert.equal((await phoneNumber(sim, token, {})).errcode, 40029);
    });

    test('token errors: missing 41001, unknown 40001, invalidated 40001', async () => {
      assert.equal((await phoneNumber(sim, undefined, { code: 'phone-1' })).errcode, 41001);
      const unknown = await phoneNumber(sim, 'not-a-token', { code: 'phone-1' });
      assert.equal(unknown.errcode, 40001);
      assert.match(unknown.errmsg, /^invalid credential, access_token is invalid or not latest/);

      const { access_token: token } = await stableToken(sim);
      sim.invalidateAccessToken();
      assert.equal((await phoneNumber(sim, token, { code: 'phone-1' })).errcode, 40001);
      // The next stable_token call, even without force_refresh, mints a new token.
      const fresh = await stableToken(sim);
      assert.notEqual(fresh.access_token, token);
      assert.equal((await phoneNumber(sim, fresh.access_token, { code: 'phone-1' })).errcode, 0);

      const s = sim.stats();
      assert.equal(s.getuserphonenumber, 4);
      assert.equal(s.token_errors, 3);
    });
  });

  describe('stats', () => {
    test('counts every call and records requests with the secret redacted', async () => {
      await login(sim, 'alice.1');
      await login(sim, 'alice.1'); // 40163, still counted
      await wechatJson(await code2session(sim, 'alice.2', { secret: 'wrong-secret' }));
      await stableToken(sim, { force_refresh: true });
      const s = sim.stats();
      assert.equal(s.code2session, 3);
      assert.equal(s.stable_token, 1);
      assert.equal(s.stable_token_force, 1);
      assert.equal(s.getuserphonenumber, 0);
      assert.equal(s.token_errors, 0);
      assert.equal(s.lastRequests.length, 4);
      assert.equal(s.requests, 4);
      assert.deepEqual(s.lastRequests[0], {
        method: 'GET',
        path: '/sns/jscode2session',
        query: { appid: APPID, secret: '[secret]', js_code: 'alice.1', grant_type: 'authorization_code' },
        body: null,
      });
      assert.equal(s.lastRequests[2].query.secret, '[wrong secret]');
      assert.deepEqual(s.lastRequests[3], {
        method: 'POST',
        path: '/cgi-bin/stable_token',
        query: {},
        body: { grant_type: 'client_credential', appid: APPID, secret: '[secret]', force_refresh: true },
      });
      assert.ok(!JSON.stringify(s).includes(SECRET));
    });

    test('keeps the last 50 requests; stats() is a snapshot; reset() clears everything', async () => {
      for (let i = 0; i < 55; i++) await (await code2session(sim, `invalid.${i}`)).text();
      const s = sim.stats();
      assert.equal(s.code2session, 55);
      assert.equal(s.lastRequests.length, 50);
      assert.equal(s.lastRequests[0].query.js_code, 'invalid.5');
      s.lastRequests.length = 0;
      assert.equal(sim.stats().lastRequests.length, 50);

      await login(sim, 'alice.1');
      sim.reset();
      assert.equal(sim.sessionKeyOf('alice'), undefined);
      assert.ok((await login(sim, 'alice.1')).session_key, 'used codes are forgotten too');
      assert.equal(sim.stats().code2session, 1);
    });
  });

  describe('encryptPhone', () => {
    test('encrypts WeChat-shaped plaintext with the current session_key', async () => {
      const { session_key: key } = await login(sim, 'alice.1');
      const enc = sim.encryptPhone({ user: 'alice', phone: '13800138000' });
      assert.equal(Buffer.from(enc.iv, 'base64').length, 16);
      assert.equal(Buffer.from(enc.encryptedData, 'base64').length % 16, 0);
      const plain = decrypt(key, enc);
      const ts = JSON.parse(plain).watermark.timestamp;
      assert.equal(
        plain,
        `{"phoneNumber":"13800138000","purePhoneNumber":"13800138000","countryCode":"86","watermark":{"timestamp":${ts},"appid":"${APPID}"}}`,
      );
    });

    test('foreign country code and watermark appid', async () => {
      const { session_key: key } = await login(sim, 'alice.1');
      const info = JSON.parse(
        decrypt(
          key,
          sim.encryptPhone({ user: 'alice', phone: '4155550123', countryCode: '1', appid: 'wx0000000000000000' }),
        ),
      );
      assert.equal(info.phoneNumber, '+1 4155550123');
      assert.equal(info.purePhoneNumber, '4155550123');
      assert.equal(info.countryCode, '1');
      assert.equal(info.watermark.appid, 'wx0000000000000000');
    });

    test('after a second login only the new session_key decrypts', async () => {
      const { session_key: oldKey } = await login(sim, 'alice.1');
      const { session_key: newKey } = await login(sim, 'alice.2');
      const enc = sim.encryptPhone({ user: 'alice', phone: '13800138000' });
      assert.equal(JSON.parse(decrypt(newKey, enc)).purePhoneNumber, '13800138000');
      let oldResult;
      try {
        oldResult = decrypt(oldKey, enc);
      } catch {
        oldResult = null; // bad padding: the usual outcome
      }
      assert.ok(oldResult === null || !oldResult.includes('13800138000'));
    });

    test('throws for a user who never logged in', async () => {
      assert.throws(() => sim.encryptPhone({ user: 'nobody', phone: '1' }), /never logged in/);
    });
  });

  describe('checksession and resetusersessionkey', () => {
    test('checksession: errcode 0 only for the signature made with the LATEST key (its base64 text as the HMAC key)', async () => {
      const { access_token: token } = await stableToken(sim);
      const first = await login(sim, 'kate.1');
      const second = await login(sim, 'kate.2');
      const openid = second.openid;
      const ok = await signedGet(sim, 'checksession', { token, openid, key: second.session_key });
      assert.deepEqual(ok, { errcode: 0, errmsg: 'ok' });
      // The previous key, a key of the decoded bytes, another message, upper-case hex: 87009.
      const bad = [
        { key: first.session_key },
        { key: Buffer.from(second.session_key, 'base64') },
        { key: second.session_key, signature: createHmac('sha256', second.session_key).update('x').digest('hex') },
        {
          key: second.session_key,
          signature: createHmac('sha256', second.session_key).update('').digest('hex').toUpperCase(),
        },
        { key: second.session_key, signature: undefined },
      ];
      for (const b of bad) {
        const r = await signedGet(sim, 'checksession', { token, openid, ...b });
        assert.equal(r.errcode, 87009, JSON.stringify(b));
        assert.match(r.errmsg, RID);
      }
      assert.equal(sim.stats().checksession, 6);
    });

    test('loginSignature is that HMAC', () => {
      const key = 'HyVFkGl5F5OQWJZZaNzBBg==';
      assert.equal(loginSignature(key, ''), createHmac('sha256', key).update('').digest('hex'));
      assert.equal(loginSignature(key, 'data'), createHmac('sha256', key).update('data').digest('hex'));
      assert.notEqual(loginSignature(key, ''), loginSignature(key, 'data'));
    });

    test('checksession: token, method, openid and sig_method are checked first', async () => {
      const { access_token: token } = await stableToken(sim);
      const u = await login(sim, 'liam.1');
      const base = { token, openid: u.openid, key: u.session_key };
      assert.equal((await signedGet(sim, 'checksession', { ...base, token: 'nope' })).errcode, 40001);
      assert.equal((await signedGet(sim, 'checksession', { ...base, access_token: undefined })).errcode, 41001);
      assert.equal((await signedGet(sim, 'checksession', { ...base, openid: 'oUnknown' })).errcode, 40003);
      assert.equal((await signedGet(sim, 'checksession', { ...base, sig_method: 'hmac_sha1' })).errcode, 40097);
      assert.equal((await signedGet(sim, 'checksession', { ...base, sig_method: undefined })).errcode, 40097);
      const post = await wechatJson(
        await fetch(
          `${sim.url}/wxa/checksession?${new URLSearchParams({ access_token: token, openid: u.openid, signature: loginSignature(u.session_key, ''), sig_method: 'hmac_sha256' })}`,
          { method: 'POST' },
        ),
      );
      assert.equal(post.errcode, 43001);
      sim.invalidateAccessToken();
      assert.equal((await signedGet(sim, 'checksession', base)).errcode, 40001);
      assert.equal(sim.stats().token_errors, 3);
    });

    test('resetusersessionkey: a new latest key; the old one stops checking, the new one checks', async () => {
      const { access_token: token } = await stableToken(sim);
      const u = await login(sim, 'mona.1');
      const r = await signedGet(sim, 'resetusersessionkey', { token, openid: u.openid, key: u.session_key });
      assert.deepEqual(Object.keys(r).sort(), ['errcode', 'errmsg', 'openid', 'session_key']);
      assert.equal(r.errcode, 0);
      assert.equal(r.errmsg, 'ok');
      assert.equal(r.openid, u.openid);
      assert.equal(Buffer.from(r.session_key, 'base64').length, 16);
      assert.notEqual(r.session_key, u.session_key);
      assert.equal(sim.sessionKeyOf('mona'), r.session_key);
      assert.deepEqual(sim.sessionKeysOf('mona'), [u.session_key, r.session_key]);
      const base = { token, openid: u.openid };
      assert.equal((await signedGet(sim, 'checksession', { ...base, key: u.session_key })).errcode, 87009);
      assert.equal((await signedGet(sim, 'checksession', { ...base, key: r.session_key })).errcode, 0);
      // A reset signed with the old key is refused and changes nothing.
      const again = await signedGet(sim, 'resetusersessionkey', { ...base, key: u.session_key });
      assert.equal(again.errcode, 87009);
      assert.equal(again.session_key, undefined);
      assert.equal(sim.sessionKeyOf('mona'), r.session_key);
      assert.equal(sim.stats().resetusersessionkey, 2);
    });

    test('failNext: the next calls to a path fail as asked, then it answers normally', async () => {
      const { access_token: token } = await stableToken(sim);
      const u = await login(sim, 'nina.1');
      const args = { token, openid: u.openid, key: u.session_key };
      sim.failNext('/wxa/checksession', { errcode: -1, errmsg: 'system error' });
      sim.failNext('/wxa/checksession', { http500: true });
      assert.equal((await signedGet(sim, 'checksession', args)).errcode, -1);
      const res = await fetch(`${sim.url}/wxa/checksession`);
      assert.equal(res.status, 500);
      await res.text();
      assert.equal((await signedGet(sim, 'checksession', args)).errcode, 0);
      sim.failNext('/wxa/resetusersessionkey', { reply: { errcode: 0, errmsg: 'ok', openid: 'oOther' } });
      assert.deepEqual(await signedGet(sim, 'resetusersessionkey', args), {
        errcode: 0,
        errmsg: 'ok',
        openid: 'oOther',
      });
      assert.equal(sim.sessionKeyOf('nina'), u.session_key, 'a canned reply changes nothing');
      const quick = await startWechatSim({ appid: APPID, secret: SECRET, slowMs: 100 });
      try {
        quick.failNext('/sim/echo', { slow: true });
        const t0 = Date.now();
        assert.equal((await wechatJson(await fetch(`${quick.url}/sim/echo`))).errcode, 0);
        assert.ok(Date.now() - t0 >= 90);
      } finally {
        await quick.close();
      }
      sim.failNext('/wxa/checksession', { errcode: -1 });
      sim.clearFaults();
      assert.equal((await signedGet(sim, 'checksession', args)).errcode, 0);
      assert.throws(() => sim.failNext('wxa/x', {}), TypeError);
    });
  });

  describe('relay targets', () => {
    test('msg_sec_check: errcode 0 with a result, 87014 for a trigger word, 40001 on a bad token', async () => {
      const { access_token: token } = await stableToken(sim);
      const ok = await wechatJson(await postJson(sim, '/wxa/msg_sec_check', token, { content: 'hello', version: 2 }));
      assert.equal(ok.errcode, 0);
      assert.equal(ok.result.suggest, 'pass');
      for (const content of ['a forbidden-word here', '含违禁词的内容']) {
        const risky = await wechatJson(await postJson(sim, '/wxa/msg_sec_check', token, { content }));
        assert.equal(risky.errcode, 87014, content);
        assert.match(risky.errmsg, RID);
      }
      assert.equal(
        (await wechatJson(await postJson(sim, '/wxa/msg_sec_check', 'stale', { content: 'x' }))).errcode,
        40001,
      );
      assert.equal(
        (await wechatJson(await postJson(sim, '/wxa/msg_sec_check', undefined, { content: 'x' }))).errcode,
        41001,
      );
      assert.equal((await wechatJson(await postJson(sim, '/wxa/msg_sec_check', token, 'not json'))).errcode, 47001);
      assert.equal(sim.stats().msg_sec_check, 6);
    });

    test('getwxacodeunlimit: the same PNG bytes for the same scene, image/png; JSON errcode on a bad token', async () => {
      const { access_token: token } = await stableToken(sim);
      const res = await postJson(sim, '/wxa/getwxacodeunlimit', token, { scene: 'a=1', page: 'pages/index/index' });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), 'image/png');
      const png = Buffer.from(await res.arrayBuffer());
      assert.deepEqual(png, pngFor('a=1'));
      assert.notDeepEqual(png, pngFor('a=2'));
      assert.deepEqual(png.subarray(0, 8), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
      // A real PNG: IHDR 16×16 RGB, and the IDAT inflates to 16 rows of 1 + 48 bytes.
      assert.equal(png.readUInt32BE(16), 16);
      const idat = png.indexOf('IDAT');
      assert.equal(inflateSync(png.subarray(idat + 4, idat + 4 + png.readUInt32BE(idat - 4))).length, 16 * 49);
      assert.throws(() => new TextDecoder('utf-8', { fatal: true }).decode(png), 'not UTF-8');

      const bad = await wechatJson(await postJson(sim, '/wxa/getwxacodeunlimit', 'stale', { scene: 'a=1' }));
      assert.equal(bad.errcode, 40001);
      const noScene = await wechatJson(await postJson(sim, '/wxa/getwxacodeunlimit', token, {}));
      assert.equal(noScene.errcode, 41030);
    });

    test('sim/echo answers what arrived; relayed() keeps every call unredacted and flags the AppSecret', async () => {
      const { access_token: token } = await stableToken(sim);
      const body = Buffer.from([0, 1, 2, 0xff, 0xfe]);
      const res = await fetch(`${sim.url}/sim/echo?b=2&access_token=${token}&a=1&a=%2B`, {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream', 'x-extra': 'yes' },
        body,
      });
      assert.match(res.headers.get('x-sim-rid'), /^[0-9a-f]{8}-/, "a header of WeChat's own");
      const echo = await wechatJson(res);
      assert.equal(echo.errcode, 0);
      assert.equal(echo.method, 'PUT');
      assert.deepEqual(echo.query, [
        ['b', '2'],
        ['a', '1'],
        ['a', '+'],
      ]);
      assert.equal(echo.content_type, 'application/octet-stream');
      assert.deepEqual(Buffer.from(echo.body_base64, 'base64'), body);

      await (await postJson(sim, '/wxa/msg_sec_check', 'old-token', { content: 'x' })).text();
      await (await postJson(sim, '/wxa/msg_sec_check', token, { content: `leak ${SECRET}` })).text();
      await (await fetch(`${sim.url}/sim/echo?access_token=${token}`, { headers: { 'x-leak': SECRET } })).text();
      await (await fetch(`${sim.url}/sim/echo?access_token=${token}&s=${SECRET}`)).text();
      // Not a relay target: not kept there.
      await phoneNumber(sim, token, { code: 'phone-1' });

      const calls = sim.relayed();
      assert.deepEqual(
        calls.map((c) => [c.method, c.path, c.tokenValid, c.sawSecret]),
        [
          ['PUT', '/sim/echo', true, false],
          ['POST', '/wxa/msg_sec_check', false, false],
          ['POST', '/wxa/msg_sec_check', true, true],
          ['GET', '/sim/echo', true, true],
          ['GET', '/sim/echo', true, true],
        ],
      );
      assert.equal(calls[0].token, token);
      assert.equal(calls[1].token, 'old-token');
      assert.deepEqual(calls[0].query, [
        ['b', '2'],
        ['access_token', token],
        ['a', '1'],
        ['a', '+'],
      ]);
      assert.equal(calls[0].contentType, 'application/octet-stream');
      assert.equal(calls[0].headers['x-extra'], 'yes');
      assert.deepEqual(calls[0].body, body);
      calls[0].body[0] = 9; // a copy
      assert.equal(sim.relayed()[0].body[0], 0);
      assert.equal(sim.accessToken(), token);
      sim.invalidateAccessToken();
      assert.equal(sim.accessToken(), null);
    });

    test('rejectTokens(n): the next n token checks answer 40001, even with the valid token', async () => {
      const { access_token: token } = await stableToken(sim);
      sim.rejectTokens(2);
      for (let i = 0; i < 2; i++) {
        assert.equal(
          (await wechatJson(await postJson(sim, '/wxa/msg_sec_check', token, { content: 'x' }))).errcode,
          40001,
        );
      }
      assert.equal((await wechatJson(await postJson(sim, '/wxa/msg_sec_check', token, { content: 'x' }))).errcode, 0);
      assert.equal(sim.relayed().filter((c) => c.tokenValid).length, 3, 'the token itself stayed valid');
      assert.throws(() => sim.rejectTokens(-1), TypeError);
    });
  });

  describe('encrypt (any open data) and the key history', () => {
    test('WeRun data under the latest key, or under a given older key', async () => {
      const a = await login(sim, 'olga.1');
      const b = await login(sim, 'olga.2');
      assert.deepEqual(sim.sessionKeysOf('olga'), [a.session_key, b.session_key]);
      assert.deepEqual(sim.sessionKeysOf('nobody'), []);
      const werun = {
        stepInfoList: [
          { timestamp: 1445866601, step: 100 },
          { timestamp: 1445876601, step: 120 },
        ],
        watermark: sim.watermark(),
      };
      assert.equal(werun.watermark.appid, APPID);
      assert.ok(Math.abs(werun.watermark.timestamp - Date.now() / 1000) < 5);
      assert.deepEqual(sim.watermark({ appid: 'wx1', timestamp: 7 }), { timestamp: 7, appid: 'wx1' });

      const latest = sim.encrypt('olga', werun);
      assert.deepEqual(JSON.parse(decrypt(b.session_key, latest)), werun);
      const stale = sim.encrypt('olga', werun, { key: a.session_key });
      assert.deepEqual(JSON.parse(decrypt(a.session_key, stale)), werun);
      assert.equal(sim.encrypt('olga', 'plain text', { key: a.session_key }).iv.length, 24);
      assert.equal(decrypt(a.session_key, sim.encrypt('olga', 'plain text', { key: a.session_key })), 'plain text');
      // A stale phone too.
      const phone = sim.encryptPhone({ user: 'olga', phone: '13800138000', key: a.session_key });
      assert.equal(JSON.parse(decrypt(a.session_key, phone)).purePhoneNumber, '13800138000');

      assert.throws(() => sim.encrypt('nobody', werun), /never logged in/);
      assert.throws(() => sim.encrypt('olga', werun, { key: 'AAAAAAAAAAAAAAAAAAAAAA==' }), /never/);
    });

    test('over HTTP: /__sim/encrypt, /__sim/relayed, /__sim/reject-tokens', async () => {
      const a = await login(sim, 'pia.1');
      await login(sim, 'pia.2');
      let res = await fetch(`${sim.url}/__sim/encrypt`, {
        method: 'POST',
        body: JSON.stringify({
          user: 'pia',
          plaintext: { openGId: 'G1', watermark: { appid: APPID } },
          key: a.session_key,
        }),
      });
      assert.equal(res.status, 200);
      assert.equal(JSON.parse(decrypt(a.session_key, await res.json())).openGId, 'G1');
      for (const [body, status] of [
        [{ user: 'nobody', plaintext: 'x' }, 404],
        [{ user: 'pia' }, 400],
        [{ user: 'pia', plaintext: 'x', key: 'AAAAAAAAAAAAAAAAAAAAAA==' }, 400],
      ]) {
        res = await fetch(`${sim.url}/__sim/encrypt`, { method: 'POST', body: JSON.stringify(body) });
        assert.equal(res.status, status, JSON.stringify(body));
        await res.text();
      }

      const { access_token: token } = await stableToken(sim);
      res = await fetch(`${sim.url}/__sim/reject-tokens`, { method: 'POST', body: JSON.stringify({ n: 1 }) });
      assert.equal(res.status, 200);
      await res.text();
      await (await postJson(sim, '/wxa/msg_sec_check', token, { content: 'x' })).text();
      res = await fetch(`${sim.url}/__sim/relayed`);
      const calls = await res.json();
      assert.equal(calls.length, 1);
      assert.equal(calls[0].path, '/wxa/msg_sec_check');
      assert.equal(Buffer.from(calls[0].body, 'base64').toString(), '{"content":"x"}');
      res = await fetch(`${sim.url}/__sim/reject-tokens`, { method: 'POST', body: '{"n":-2}' });
      assert.equal(res.status, 400);
      await res.text();
    });

    test('reset() forgets the key history, the openids and the relayed calls', async () => {
      const { access_token: token } = await stableToken(sim);
      await login(sim, 'quin.1');
      await (await postJson(sim, '/wxa/msg_sec_check', token, { content: 'x' })).text();
      sim.reset();
      assert.deepEqual(sim.sessionKeysOf('quin'), []);
      assert.deepEqual(sim.relayed(), []);
      assert.equal(sim.accessToken(), null);
    });
  });

  describe('HTTP controls under /__sim/', () => {
    test('stats, reset, invalidate-token, encrypt-phone', async () => {
      const { session_key: key } = await login(sim, 'alice.1');
      let res = await fetch(`${sim.url}/__sim/stats`);
      assert.equal(res.status, 200);
      assert.equal((await res.json()).code2session, 1);

      res = await fetch(`${sim.url}/__sim/encrypt-phone`, {
        method: 'POST',
        body: JSON.stringify({ user: 'alice', phone: '13800138000' }),
      });
      assert.equal(res.status, 200);
      const enc = await res.json();
      assert.deepEqual(Object.keys(enc).sort(), ['encryptedData', 'iv']);
      assert.equal(JSON.parse(decrypt(key, enc)).phoneNumber, '13800138000');

      res = await fetch(`${sim.url}/__sim/encrypt-phone`, {
        method: 'POST',
        body: JSON.stringify({ user: 'nobody', phone: '13800138000' }),
      });
      assert.equal(res.status, 404);
      assert.equal((await res.json()).errcode, 404);

      res = await fetch(`${sim.url}/__sim/encrypt-phone`, { method: 'POST', body: 'not json' });
      assert.equal(res.status, 400);
      await res.text();

      const { access_token: token } = await stableToken(sim);
      res = await fetch(`${sim.url}/__sim/invalidate-token`, { method: 'POST' });
      assert.equal(res.status, 200);
      await res.text();
      assert.equal((await phoneNumber(sim, token, { code: 'phone-1' })).errcode, 40001);

      res = await fetch(`${sim.url}/__sim/reset`, { method: 'POST' });
      assert.equal(res.status, 200);
      await res.text();
      assert.equal(sim.stats().code2session, 0);
      assert.equal(sim.sessionKeyOf('alice'), undefined);

      res = await fetch(`${sim.url}/__sim/reset`); // wrong method
      assert.equal(res.status, 405);
      await res.text();
      // Control calls are not WeChat calls.
      assert.equal(sim.stats().lastRequests.length, 0);
    });
  });

  test('unknown paths: 404 with errcode 404', async () => {
    const res = await fetch(`${sim.url}/sns/nope`);
    assert.equal(res.status, 404);
    assert.equal(res.headers.get('content-type'), 'text/plain');
    assert.equal(JSON.parse(await res.text()).errcode, 404);
  });

  test('CLI prints its URL and serves', async () => {
    const { child, url } = await startCli('./wechat-sim.mjs', ['--port', '0', '--appid', APPID, '--secret', SECRET]);
    try {
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
      const body = await wechatJson(
        await fetch(
          `${url}/sns/jscode2session?appid=${APPID}&secret=${SECRET}&js_code=cli.1&grant_type=authorization_code`,
        ),
      );
      assert.equal(body.openid, expectedId('o', 'openid', 'cli'));
    } finally {
      assert.deepEqual(await stopCli(child), { code: 0, signal: null });
    }
  });
});

// ---- echo origin -----------------------------------------------------------

describe('echo-origin', () => {
  let origin;
  before(async () => {
    origin = await startEchoOrigin();
  });
  after(() => origin.close());

  test('echoes method, path, query, headers and body', async () => {
    const res = await fetch(`${origin.url}/api/items%20x?b=2&a=1&a=%2B`, {
      method: 'PUT',
      headers: { 'content-type': 'text/plain; charset=utf-8', 'X-WX-OpenID': 'forged' },
      body: 'héllo',
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/json');
    const echo = await res.json();
    assert.equal(echo.method, 'PUT');
    assert.equal(echo.path, '/api/items%20x');
    assert.equal(echo.query, 'b=2&a=1&a=%2B');
    assert.equal(echo.headers['x-wx-openid'], 'forged');
    assert.equal(echo.headers['content-type'], 'text/plain; charset=utf-8');
    assert.ok(echo.rawHeaders.some(([name, value]) => name.toLowerCase() === 'x-wx-openid' && value === 'forged'));
    assert.equal(echo.body, 'héllo');
    assert.equal(echo.bodyLength, 6);
    assert.deepEqual(origin.requests.at(-1), echo);
  });

  test('keeps duplicate headers: joined in headers, separate in rawHeaders', async () => {
    const echo = await new Promise((resolve, reject) => {
      const req = httpRequest(
        `${origin.url}/dup`,
        // A flat array like rawHeaders; Node adds no Host header to it.
        { headers: ['Host', new URL(origin.url).host, 'X-Dup', 'one', 'x-dup', 'two', 'Accept', 'a/b'] },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c) => (text += c));
          res.on('end', () => resolve(JSON.parse(text)));
        },
      );
      req.on('error', reject);
      req.end();
    });
    assert.equal(echo.headers['x-dup'], 'one, two');
    assert.deepEqual(
      echo.rawHeaders.filter(([n]) => n.toLowerCase() === 'x-dup'),
      [
        ['X-Dup', 'one'],
        ['x-dup', 'two'],
      ],
    );
    assert.equal(echo.body, '');
    assert.equal(echo.bodyLength, 0);
  });

  test('reads large request bodies', async () => {
    const big = 'b'.repeat(3 * 1024 * 1024);
    const echo = await (await fetch(`${origin.url}/upload`, { method: 'POST', body: big })).json();
    assert.equal(echo.bodyLength, big.length);
    assert.equal(echo.body, big);
  });

  test('/status/NNN answers that status with X-Origin-Test', async () => {
    for (const code of [201, 404, 418, 500, 503]) {
      const res = await fetch(`${origin.url}/status/${code}`);
      assert.equal(res.status, code);
      assert.equal(res.headers.get('x-origin-test'), 'yes');
      assert.equal((await res.json()).path, `/status/${code}`);
    }
    const noContent = await fetch(`${origin.url}/status/204`);
    assert.equal(noContent.status, 204);
    assert.equal(noContent.headers.get('x-origin-test'), 'yes');
    assert.equal(await noContent.text(), '');
    // Also under a base path.
    const based = await fetch(`${origin.url}/api/v1/status/409`);
    assert.equal(based.status, 409);
    await based.text();
  });

  test('/redirect is a 302 that is not followed', async () => {
    const res = await fetch(`${origin.url}/redirect`, { redirect: 'manual' });
    assert.equal(res.status, 302);
    assert.equal(res.headers.get('location'), '/elsewhere');
    await res.text();
  });

  test('/set-cookie sends two separate Set-Cookie headers', async () => {
    const res = await fetch(`${origin.url}/set-cookie`);
    assert.deepEqual(res.headers.getSetCookie(), ['a=1; Path=/', 'b=2; Path=/']);
    await res.text();
  });

  test('/big streams N bytes of "a", chunked', async () => {
    const n = 1_000_003;
    const res = await fetch(`${origin.url}/big?bytes=${n}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('transfer-encoding'), 'chunked');
    assert.equal(res.headers.get('content-length'), null);
    let total = 0;
    let chunks = 0;
    for await (const chunk of res.body) {
      assert.ok(chunk.every((byte) => byte === 0x61));
      total += chunk.length;
      chunks++;
    }
    assert.equal(total, n);
    assert.ok(chunks > 1);

    const bad = await fetch(`${origin.url}/big?bytes=-1`);
    assert.equal(bad.status, 400);
    await bad.text();
  });

  test('requests lists everything received, newest last', async () => {
    const before = origin.requests.length;
    await (await fetch(`${origin.url}/one`)).text();
    await (await fetch(`${origin.url}/two`, { method: 'DELETE' })).text();
    assert.equal(origin.requests.length, before + 2);
    assert.deepEqual(
      origin.requests.slice(-2).map((r) => [r.method, r.path]),
      [
        ['GET', '/one'],
        ['DELETE', '/two'],
      ],
    );
  });

  test('CLI prints its URL and serves', async () => {
    const { child, url } = await startCli('./echo-origin.mjs', ['--port', '0']);
    try {
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
      const echo = await (await fetch(`${url}/hello?x=1`)).json();
      assert.equal(echo.path, '/hello');
    } finally {
      assert.deepEqual(await stopCli(child), { code: 0, signal: null });
    }
  });
});
