// Tests of the dev/test doubles in this folder: the WeChat API simulator
// (wechat-sim.mjs) and the echo origin (echo-origin.mjs), over real HTTP on
// 127.0.0.1. Run with `node --test tests/support/`.

import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { createDecipheriv, createHash } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

import { startWechatSim } from './wechat-sim.mjs';
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
