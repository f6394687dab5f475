// The origin's service endpoints (issue 19) against the built worker in
// workerd, the WeChat simulator and the echo origin: admission by
// SERVICE_TOKEN (404 without it, 401 for a wrong or a client's token, the
// SERVICE_LIMITER ceiling), the session-key operations (check, reset, sign,
// decrypt) whose signatures the simulator verifies as WeChat would, and the
// WeChat relay (credential paths refused, the worker's access_token only,
// WeChat's answer unchanged, one refetch on a dead token, never the AppSecret).
//
// Run: node_modules/.bin/node --test --test-concurrency=1 tests/integration/service.test.mjs
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import {
  startStack,
  call,
  login,
  bearer,
  freshLimitWindow,
  wechatLoginElsewhere,
  TEST_ADMIN_TOKEN,
} from '../support/stack.mjs';
import { loginSignature, pngFor } from '../support/wechat-sim.mjs';

const SERVICE_TOKEN = randomBytes(48).toString('base64');
const SERVICE_TOKEN_PREVIOUS = randomBytes(48).toString('base64');
const service = bearer(SERVICE_TOKEN);
/** Generous, so only the rate-limit test meets SERVICE_LIMITER. */
const LIMITS = { SERVICE_LIMITER: 10_000 };

/** Every stack started here, for the log check at the end. */
const stacks = [];
/** Users who logged in (their session_keys must never be logged or answered). */
const users = new Set();

async function serviceStack(vars = {}, options = {}) {
  const s = await startStack({
    vars: { SERVICE_TOKEN, SERVICE_TOKEN_PREVIOUS, ...vars },
    limits: LIMITS,
    ...options,
  });
  stacks.push(s);
  return s;
}

after(async () => {
  for (const s of stacks) await s.close();
});

async function loginAs(s, code) {
  users.add(code.split('.')[0]);
  return login(s, code);
}

/** A wx.login whose code never reached the worker: WeChat's latest key moves on without it. */
async function loginElsewhere(s, code) {
  users.add(code.split('.')[0]);
  return wechatLoginElsewhere(s, code);
}

const check = (s, openid, headers = service) =>
  call(s, 'POST', `/auth/service/users/${openid}/session-key/check`, { headers });
const reset = (s, openid, headers = service) =>
  call(s, 'POST', `/auth/service/users/${openid}/session-key/reset`, { headers });
const sign = (s, openid, body, headers = service) =>
  call(s, 'POST', `/auth/service/users/${openid}/sign`, { body, headers });
const decrypt = (s, openid, body, headers = service) =>
  call(s, 'POST', `/auth/service/users/${openid}/decrypt`, { body, headers });

/** A call through the relay: the answer as bytes too. */
async function relay(s, method, path, { body, headers = {}, auth = service } = {}) {
  const res = await fetch(`${s.url}/auth/service/wechat/${path}`, {
    method,
    headers: { ...auth, ...headers },
    body,
    redirect: 'manual',
  });
  const bytes = Buffer.from(await res.arrayBuffer());
  const text = bytes.toString('utf8');
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, bytes, text, json };
}

/** A request whose path is sent exactly as written (fetch would resolve dot segments). */
function rawRequest(s, method, path, headers = {}) {
  const { hostname, port } = new URL(s.url);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ hostname, port, method, path, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => {
        let json;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode, headers: new Headers(res.headers), text, json });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

function assertError(r, status, error) {
  assert.equal(r.status, status, `expected ${status} ${error}, got ${r.status} ${r.text}`);
  assert.ok(r.json, `error body must be JSON: ${r.text}`);
  assert.equal(r.json.error, error, r.text);
  assert.equal(typeof r.json.message, 'string', r.text);
  assert.equal(r.headers.get('x-wx-edge-error'), error, "the worker's own answer is marked");
}

/** The body of WeRun data as WeChat seals it. */
function weRun(s, steps, watermark = {}) {
  return {
    stepInfoList: steps.map((step, i) => ({ timestamp: 1_700_000_000 + i * 86_400, step })),
    watermark: s.sim.watermark(watermark),
  };
}

// ------------------------------------------------------------ admission

describe('admission', () => {
  let s;
  let u;
  before(async () => {
    s = await serviceStack();
    u = await loginAs(s, 'admitted.1');
  });

  const endpoints = (openid) => [
    ['POST', `/auth/service/users/${openid}/session-key/check`],
    ['POST', `/auth/service/users/${openid}/session-key/reset`],
    ['POST', `/auth/service/users/${openid}/sign`, { data: 'x' }],
    ['POST', `/auth/service/users/${openid}/decrypt`, { encryptedData: 'AAAA', iv: 'AAAA' }],
    ['POST', '/auth/service/wechat/wxa/msg_sec_check', { content: 'x' }],
    ['GET', '/auth/service/wechat/sim/echo'],
  ];

  test('no bearer → 401 unauthorized; a wrong one, ADMIN_TOKEN, a client access token or refresh token → 401 invalid_token; WeChat never called', async () => {
    const before = s.sim.stats().requests;
    const wrong = [
      bearer(randomBytes(48).toString('base64')),
      bearer(TEST_ADMIN_TOKEN),
      bearer(u.access_token),
      bearer(u.refresh_token),
      bearer(SERVICE_TOKEN.slice(0, -1)),
      bearer(SERVICE_TOKEN + 'A'),
      { authorization: `Basic ${Buffer.from(`svc:${SERVICE_TOKEN}`).toString('base64')}` },
      { authorization: SERVICE_TOKEN },
    ];
    for (const [method, path, body] of endpoints(u.openid)) {
      assertError(await call(s, method, path, { body }), 401, 'unauthorized');
      for (const headers of wrong) {
        const r = await call(s, method, path, { body, headers });
        assert.equal(r.status, 401, `${method} ${path} with ${JSON.stringify(headers).slice(0, 30)}: ${r.text}`);
        assert.ok(['invalid_token', 'unauthorized'].includes(r.json?.error), r.text);
        assert.ok(!r.text.includes(SERVICE_TOKEN), 'the service token is echoed');
      }
      // A client's access token is never a service token.
      assertError(await call(s, method, path, { body, headers: bearer(u.access_token) }), 401, 'invalid_token');
      assertError(await call(s, method, path, { body, headers: bearer(TEST_ADMIN_TOKEN) }), 401, 'invalid_token');
    }
    assert.equal(s.sim.stats().requests, before, 'no WeChat call for a refused caller');
  });

  test('SERVICE_TOKEN_PREVIOUS is accepted (rotation); admission comes before the openid is read', async () => {
    const r = await check(s, u.openid, bearer(SERVICE_TOKEN_PREVIOUS));
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { valid: true });
    // A malformed openid: 401 for a stranger, 400 only once admitted.
    assertError(await check(s, 'a%2Fb', {}), 401, 'unauthorized');
    assertError(await check(s, 'a%2Fb', bearer(u.access_token)), 401, 'invalid_token');
    assertError(await check(s, 'a%2Fb'), 400, 'invalid_request');
  });

  test('a wrong method or an unknown service path is 404, like an unknown /auth path', async () => {
    for (const [method, path] of [
      ['GET', `/auth/service/users/${u.openid}/session-key/check`],
      ['PUT', `/auth/service/users/${u.openid}/sign`],
      ['GET', `/auth/service/users/${u.openid}/decrypt`],
      ['POST', `/auth/service/users/${u.openid}/session-key`],
      ['POST', `/auth/service/users/${u.openid}/session-key/check/more`],
      ['POST', `/auth/service/users/${u.openid}`],
      ['POST', '/auth/service/users'],
      ['POST', '/auth/service/'],
      ['POST', '/auth/service/nothing'],
    ]) {
      const r = await call(s, method, path, { headers: service });
      assert.equal(r.status, 404, `${method} ${path}: ${r.status} ${r.text}`);
      assert.equal(r.json?.error, 'not_found', r.text);
    }
  });

  test('an openid with odd characters in the path is refused before anything is asked of WeChat', async () => {
    const before = s.sim.stats().requests;
    const odd = [
      'a%2Fb',
      'o%00x',
      'o%20x',
      'o.x',
      'o%2E%2E',
      'o;x',
      'o%3Bx',
      encodeURIComponent('ö-user'),
      'o'.repeat(129),
      `${u.openid}%2F..%2F`,
      `${u.openid}%00`,
    ];
    for (const openid of odd) {
      for (const r of [await check(s, openid), await sign(s, openid, { data: 'x' })]) {
        assert.ok([400, 404].includes(r.status), `${openid}: ${r.status} ${r.text}`);
        assert.ok(['invalid_request', 'not_found'].includes(r.json?.error), r.text);
      }
    }
    assert.equal(s.sim.stats().requests, before, 'WeChat was asked about a mangled openid');
    // Dot segments sent raw: workerd resolves them before the worker sees the path, so what
    // arrives is an ordinary call (about the user the path resolves to) or an unknown path.
    const dots = [
      [`/auth/service/users/../users/${u.openid}/session-key/check`, 200],
      [`/auth/service/users/${u.openid}/session-key/../../${u.openid}/sign`, 400], // no body
      [`/auth/service/users/%2e%2e/admin/users/${u.openid}`, 404],
      [`/auth/service/users/${u.openid}/../../admin/users/${u.openid}/revoke`, 404],
      // The service token is no operator token.
      [`/auth/service/../admin/users/${u.openid}/revoke`, 401],
    ];
    for (const [path, status] of dots) {
      const r = await rawRequest(s, 'POST', path, service);
      assert.equal(r.status, status, `${path}: ${r.status} ${r.text}`);
    }
    assert.equal((await s.user(u.openid)).live_sessions, 1, 'nothing was revoked');
  });

  test('an openid that never logged in, or whose sessions all ended: 404 "no live session"; WeChat not called', async () => {
    const gone = await loginAs(s, 'leaver.1');
    assert.equal((await call(s, 'POST', '/auth/logout', { headers: bearer(gone.access_token) })).status, 204);
    const sealed = s.sim.encrypt('leaver', weRun(s, [1]));
    const before = s.sim.stats().requests;
    for (const openid of ['oNeverLoggedInAtAll000000000', gone.openid]) {
      for (const r of [
        await check(s, openid),
        await reset(s, openid),
        await sign(s, openid, { data: 'x' }),
        await decrypt(s, openid, sealed),
      ]) {
        assertError(r, 404, 'not_found');
        assert.match(r.json.message, /no live session/);
      }
    }
    assert.equal(s.sim.stats().requests, before);
  });
});

describe('without SERVICE_TOKEN', () => {
  test('every /auth/service/ path is 404, with or without a bearer; the rest of the worker serves', async (t) => {
    const s = await startStack({ limits: LIMITS });
    stacks.push(s);
    const u = await loginAs(s, 'noservice.1');
    const before = s.sim.stats().requests;
    for (const headers of [{}, service, bearer(TEST_ADMIN_TOKEN), bearer(u.access_token)]) {
      for (const [method, path] of [
        ['POST', `/auth/service/users/${u.openid}/session-key/check`],
        ['POST', `/auth/service/users/${u.openid}/session-key/reset`],
        ['POST', `/auth/service/users/${u.openid}/sign`],
        ['POST', `/auth/service/users/${u.openid}/decrypt`],
        ['POST', '/auth/service/wechat/wxa/msg_sec_check'],
        ['GET', '/auth/service/wechat/cgi-bin/token'],
        ['GET', '/auth/service/wechat/sim/echo'],
        ['POST', '/auth/service/anything'],
      ]) {
        const body = method === 'POST' ? { data: 'x' } : undefined;
        assertError(await call(s, method, path, { headers, body }), 404, 'not_found');
      }
    }
    assert.equal(s.sim.stats().requests, before, 'nothing reached WeChat');
    assert.equal((await call(s, 'GET', '/auth/session', { headers: bearer(u.access_token) })).status, 200);
    t.diagnostic('no service endpoint without SERVICE_TOKEN');
  });
});

describe('configuration', () => {
  async function assertMisconfigured(s, name, value) {
    for (const [method, path, headers] of [
      ['GET', '/auth/session', {}],
      ['POST', '/auth/service/users/oX/session-key/check', service],
    ]) {
      const r = await call(s, method, path, { headers });
      assert.equal(r.status, 500, r.text);
      assert.equal(r.json?.error, 'server_misconfigured', r.text);
      assert.ok(r.json.message.includes(name), r.text);
      assert.ok(!r.text.includes(value), 'the value is in the answer');
    }
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(!s.logs().includes(value), 'the value is in the log');
  }

  test('a weak SERVICE_TOKEN, or one equal to ADMIN_TOKEN → 500 server_misconfigured naming SERVICE_TOKEN', async () => {
    for (const value of ['tooFewChars9', 'a'.repeat(31) + 'b', TEST_ADMIN_TOKEN]) {
      const s = await startStack({ vars: { SERVICE_TOKEN: value }, limits: LIMITS });
      stacks.push(s);
      await assertMisconfigured(s, 'SERVICE_TOKEN', value);
    }
  });

  test('WX_RELAY_PATHS listing a refused or malformed path → 500 naming WX_RELAY_PATHS: the list never reopens one', async () => {
    for (const value of ['wxa,sns', 'cgi-bin/token', 'CGI-BIN/Stable_Token', 'wxa/../sns', 'wxa/%2e']) {
      const s = await startStack({ vars: { SERVICE_TOKEN, WX_RELAY_PATHS: value }, limits: LIMITS });
      stacks.push(s);
      const r = await call(s, 'POST', '/auth/service/wechat/wxa/msg_sec_check', { headers: service, body: {} });
      assert.equal(r.status, 500, `${value}: ${r.text}`);
      assert.equal(r.json?.error, 'server_misconfigured');
      assert.match(r.json.message, /WX_RELAY_PATHS/);
    }
  });
});

describe('rate limit', () => {
  test('SERVICE_LIMITER per client address (/64): guesses count; over it 429 with Retry-After and WeChat is not called', async () => {
    const s = await startStack({ vars: { SERVICE_TOKEN }, limits: { SERVICE_LIMITER: 4 } });
    stacks.push(s);
    const u = await loginAs(s, 'limited.1');
    await freshLimitWindow();
    const from = (ip) => ({ 'CF-Connecting-IP': ip });
    for (let i = 0; i < 3; i++) {
      const r = await check(s, u.openid, {
        ...bearer('guess' + i + randomBytes(40).toString('hex')),
        ...from('2001:db8:1:2::1'),
      });
      assertError(r, 401, 'invalid_token');
    }
    const ok = await check(s, u.openid, { ...service, ...from('2001:db8:1:2::1') });
    assert.equal(ok.status, 200, ok.text);
    const before = s.sim.stats().requests;
    // The same /64, another address: the same budget, spent.
    const limited = await check(s, u.openid, { ...service, ...from('2001:db8:1:2:ffff:ffff:ffff:ffff') });
    assertError(limited, 429, 'rate_limited');
    assert.ok(Number(limited.headers.get('retry-after')) > 0, 'Retry-After');
    const relayed = await relay(s, 'GET', 'sim/echo', { headers: from('2001:db8:1:2::7') });
    assert.equal(relayed.status, 429, relayed.text);
    assert.equal(s.sim.stats().requests, before, 'WeChat was not called past the limit');
    // Another address has its own budget.
    const other = await check(s, u.openid, { ...service, ...from('198.51.100.9') });
    assert.equal(other.status, 200, other.text);
  });
});

// ------------------------------------------------------------ session keys

describe('session-key check, reset and sign', () => {
  let s;
  before(async () => {
    s = await serviceStack();
  });

  test("check: {valid: true} with the newest session's key — the simulator checked the signature as WeChat does", async () => {
    await loginAs(s, 'checker.1');
    const u = await loginAs(s, 'checker.2'); // the newest session holds WeChat's latest key
    const r = await check(s, u.openid);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { valid: true });
    assert.equal(r.headers.get('cache-control'), 'no-store');
    const sent = s.sim
      .stats()
      .lastRequests.filter((q) => q.path === '/wxa/checksession')
      .at(-1);
    assert.equal(sent.method, 'GET');
    assert.equal(sent.query.openid, u.openid);
    assert.equal(sent.query.sig_method, 'hmac_sha256');
    assert.equal(sent.query.signature, loginSignature(s.sim.sessionKeyOf('checker'), ''));
    assert.equal(sent.query.access_token, s.sim.accessToken());
    assert.ok(!r.text.includes(s.sim.sessionKeyOf('checker')));
  });

  test('check: {valid: false} once WeChat rotated the key behind the worker (87009)', async () => {
    const u = await loginAs(s, 'rotated.1');
    await loginElsewhere(s, 'rotated.2');
    const r = await check(s, u.openid);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { valid: false });
  });

  test('check: a dead access_token (invalidated mid-test) is fetched again once and the call repeated', async () => {
    const u = await loginAs(s, 'tokcheck.1');
    assert.deepEqual((await check(s, u.openid)).json, { valid: true }); // the worker holds a token now
    s.sim.invalidateAccessToken();
    const before = s.sim.stats();
    const r = await check(s, u.openid);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { valid: true });
    const after = s.sim.stats();
    assert.equal(after.checksession - before.checksession, 2, 'one retry');
    assert.equal(after.stable_token - before.stable_token, 1, 'one refetch');
    assert.equal(after.stable_token_force - before.stable_token_force, 0, 'never force_refresh');
    // A token refused twice in a row: no third try.
    s.sim.rejectTokens(2);
    const mid = s.sim.stats();
    const twice = await check(s, u.openid);
    assert.ok(twice.status >= 500, twice.text);
    assert.equal(s.sim.stats().checksession - mid.checksession, 2);
  });

  test('check: WeChat failing → 502 wechat_unavailable; a slow WeChat → 502 too', async () => {
    const u = await loginAs(s, 'wxdown.1');
    for (const fault of [{ http500: true }, { garbage: true }, { slow: true }]) {
      s.sim.failNext('/wxa/checksession', fault);
      s.sim.failNext('/wxa/checksession', fault); // a retry, if any, fails the same way
      const r = await check(s, u.openid);
      assertError(r, 502, 'wechat_unavailable');
      s.sim.clearFaults();
    }
    assert.deepEqual((await check(s, u.openid)).json, { valid: true }, 'and it recovers');
  });

  test('sign: {signature: hex hmac_sha256(session_key, data), sig_method}; another user has another signature', async () => {
    const a = await loginAs(s, 'payer.1');
    const b = await loginAs(s, 'payee.1');
    const data = JSON.stringify({ offerId: '123', buyQuantity: 1, env: 0, currencyType: 'CNY', outTradeNo: 'T1' });
    const r = await sign(s, a.openid, { data });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, {
      signature: loginSignature(s.sim.sessionKeyOf('payer'), data),
      sig_method: 'hmac_sha256',
    });
    assert.equal(r.headers.get('cache-control'), 'no-store');
    assert.ok(!r.text.includes(s.sim.sessionKeyOf('payer')));
    // The openid in the path picks the key: B's is B's.
    const rb = await sign(s, b.openid, { data });
    assert.equal(rb.json.signature, loginSignature(s.sim.sessionKeyOf('payee'), data));
    assert.notEqual(rb.json.signature, r.json.signature);
    // UTF-8 data, signed as its bytes.
    const cjk = '{"商品":"会员","金额":1}';
    assert.equal(
      (await sign(s, a.openid, { data: cjk })).json.signature,
      loginSignature(s.sim.sessionKeyOf('payer'), cjk),
    );
    // Signing never calls WeChat.
    const before = s.sim.stats().requests;
    await sign(s, a.openid, { data: 'again' });
    assert.equal(s.sim.stats().requests, before);
  });

  test('sign: the newest live session signs; bad bodies → 400; over 16 KiB → 413', async () => {
    const first = await loginAs(s, 'signer.1');
    await loginAs(s, 'signer.2');
    const r = await sign(s, first.openid, { data: 'x' });
    assert.equal(r.json.signature, loginSignature(s.sim.sessionKeyOf('signer'), 'x'));
    assert.notEqual(r.json.signature, loginSignature(s.sim.sessionKeysOf('signer')[0], 'x'));
    for (const body of [
      {},
      { data: '' },
      { data: 1 },
      { data: null },
      { data: ['x'] },
      { data: { a: 1 } },
      [],
      'not json',
      '"x"',
    ]) {
      assertError(await sign(s, first.openid, body), 400, 'invalid_request');
    }
    assertError(
      await call(s, 'POST', `/auth/service/users/${first.openid}/sign`, { form: { data: 'x' }, headers: service }),
      400,
      'invalid_request',
    );
    assertError(await sign(s, first.openid, { data: 'x'.repeat(17 * 1024) }), 413, 'payload_too_large');
  });

  test('reset: {reset: true}; WeChat has a new key and the worker keeps it: check is valid, sign and decrypt use it', async () => {
    const u = await loginAs(s, 'resetter.1');
    const oldKey = s.sim.sessionKeyOf('resetter');
    const r = await reset(s, u.openid);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { reset: true });
    const newKey = s.sim.sessionKeyOf('resetter');
    assert.notEqual(newKey, oldKey);
    assert.ok(!r.text.includes(newKey) && !r.text.includes(oldKey), 'no key in the answer');
    const sent = s.sim
      .stats()
      .lastRequests.filter((q) => q.path === '/wxa/resetusersessionkey')
      .at(-1);
    assert.equal(sent.query.signature, loginSignature(oldKey, ''));
    assert.equal(sent.query.sig_method, 'hmac_sha256');
    assert.equal(sent.query.openid, u.openid);

    assert.deepEqual((await check(s, u.openid)).json, { valid: true }, 'the check is signed with the new key');
    assert.equal((await sign(s, u.openid, { data: 'p' })).json.signature, loginSignature(newKey, 'p'));
    const werun = weRun(s, [10, 20]);
    const d = await decrypt(s, u.openid, s.sim.encrypt('resetter', werun));
    assert.equal(d.status, 200, d.text);
    assert.deepEqual(d.json, { data: werun });
    // A second reset moves on again.
    assert.deepEqual((await reset(s, u.openid)).json, { reset: true });
    assert.equal(s.sim.sessionKeysOf('resetter').length, 3);
    assert.equal(
      (await sign(s, u.openid, { data: 'p' })).json.signature,
      loginSignature(s.sim.sessionKeyOf('resetter'), 'p'),
    );
    // The session itself lives on.
    assert.equal((await call(s, 'GET', '/auth/session', { headers: bearer(u.access_token) })).status, 200);
  });

  test('reset: a reply naming another openid → 502 and nothing stored; a dead token is refetched once', async () => {
    const u = await loginAs(s, 'resetodd.1');
    const key = s.sim.sessionKeyOf('resetodd');
    const planted = randomBytes(16).toString('base64');
    s.sim.failNext('/wxa/resetusersessionkey', {
      reply: { errcode: 0, errmsg: 'ok', openid: 'oSomebodyElse000000000000000', session_key: planted },
    });
    const r = await reset(s, u.openid);
    assertError(r, 502, 'wechat_unavailable');
    assert.ok(!r.text.includes(planted));
    assert.equal(
      (await sign(s, u.openid, { data: 'q' })).json.signature,
      loginSignature(key, 'q'),
      'the key is unchanged',
    );

    s.sim.invalidateAccessToken();
    const before = s.sim.stats();
    assert.deepEqual((await reset(s, u.openid)).json, { reset: true });
    assert.equal(s.sim.stats().resetusersessionkey - before.resetusersessionkey, 2);
    assert.equal(s.sim.stats().stable_token - before.stable_token, 1);
    assert.equal(
      (await sign(s, u.openid, { data: 'q' })).json.signature,
      loginSignature(s.sim.sessionKeyOf('resetodd'), 'q'),
    );
  });
});

// ------------------------------------------------------------ decrypt

describe('decrypt', () => {
  let s;
  before(async () => {
    s = await serviceStack();
  });

  test('WeRun steps, share info and a phone: {data: the decrypted JSON, watermark included}; nothing is bound', async () => {
    const u = await loginAs(s, 'walker.1');
    const werun = weRun(s, [1200, 8000, 15000]);
    const r = await decrypt(s, u.openid, s.sim.encrypt('walker', werun));
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { data: werun });
    assert.equal(r.headers.get('cache-control'), 'no-store');

    const share = { openGId: 'tGxyz_1234567890', watermark: s.sim.watermark() };
    assert.deepEqual((await decrypt(s, u.openid, s.sim.encrypt('walker', share))).json, { data: share });

    const phone = await decrypt(s, u.openid, s.sim.encryptPhone({ user: 'walker', phone: '13800138000' }));
    assert.equal(phone.status, 200, phone.text);
    assert.equal(phone.json.data.purePhoneNumber, '13800138000');
    assert.equal((await s.user(u.openid)).phone, null, 'decrypt binds nothing');
    // No WeChat call: the key is the worker's.
    const before = s.sim.stats().requests;
    await decrypt(s, u.openid, s.sim.encrypt('walker', werun));
    assert.equal(s.sim.stats().requests, before);
  });

  test("a stale newest key falls back to an older live session's: the data a client sealed before its next login opens", async () => {
    const first = await loginAs(s, 'twodev.1');
    const oldKey = s.sim.sessionKeyOf('twodev');
    await loginAs(s, 'twodev.2'); // the newest session, with the newest key
    const werun = weRun(s, [42]);
    const r = await decrypt(s, first.openid, s.sim.encrypt('twodev', werun, { key: oldKey }));
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { data: werun });
    // A key WeChat rotated away from with no session in the worker does not open anything.
    const third = await loginElsewhere(s, 'twodev.3');
    assertError(
      await decrypt(s, first.openid, s.sim.encrypt('twodev', werun, { key: third.session_key })),
      400,
      'decrypt_failed',
    );
    // Keys of ended sessions are not tried.
    assert.equal((await call(s, 'POST', '/auth/logout', { headers: bearer(first.access_token) })).status, 204);
    assertError(await decrypt(s, first.openid, s.sim.encrypt('twodev', werun, { key: oldKey })), 400, 'decrypt_failed');
  });

  test("the openid in the path picks whose keys are tried: another user's data does not open", async () => {
    const a = await loginAs(s, 'alicedec.1');
    await loginAs(s, 'bobdec.1');
    const sealedForBob = s.sim.encrypt('bobdec', weRun(s, [7]));
    assertError(await decrypt(s, a.openid, sealedForBob), 400, 'decrypt_failed');
  });

  test('watermark of another appid → 400 watermark_mismatch; stale watermark or non-object plaintext → 400 invalid_request', async () => {
    const u = await loginAs(s, 'marks.1');
    assertError(
      await decrypt(s, u.openid, s.sim.encrypt('marks', weRun(s, [1], { appid: 'wx0000000000000000' }))),
      400,
      'watermark_mismatch',
    );
    const unmarked = await decrypt(s, u.openid, s.sim.encrypt('marks', { openGId: 'tGnowatermark' }));
    assertError(unmarked, 400, 'invalid_request');
    assert.match(unmarked.json.message, /watermark/);
    const old = weRun(s, [1], { timestamp: Math.floor(Date.now() / 1000) - 3600 });
    const stale = await decrypt(s, u.openid, s.sim.encrypt('marks', old));
    assertError(stale, 400, 'invalid_request');
    assert.match(stale.json.message, /PHONE_DATA_MAX_AGE|old/);
    // Another user, so these do not add up to the lockout with the stale one.
    const p = await loginAs(s, 'plain.1');
    for (const plain of ['not json at all', '[1,2,3]', '42', '"text"']) {
      const r = await decrypt(s, p.openid, s.sim.encrypt('plain', plain));
      assert.equal(r.status, 400, `${plain}: ${r.text}`);
      assert.ok(['invalid_request', 'decrypt_failed'].includes(r.json?.error), r.text);
    }
  });

  test('bad bodies → 400 invalid_request; over 16 KiB → 413; form bodies are not taken', async () => {
    const u = await loginAs(s, 'decbad.1');
    const enc = s.sim.encrypt('decbad', weRun(s, [1]));
    for (const body of [
      {},
      { encryptedData: enc.encryptedData },
      { iv: enc.iv },
      { encryptedData: 5, iv: enc.iv },
      { encryptedData: enc.encryptedData, iv: '!!!not*base64!!!' },
      { encryptedData: enc.encryptedData, iv: Buffer.alloc(8, 1).toString('base64') },
      { encryptedData: '***', iv: enc.iv },
      { encryptedData: Buffer.alloc(20, 1).toString('base64'), iv: enc.iv },
      'not json',
    ]) {
      assertError(await decrypt(s, u.openid, body), 400, 'invalid_request');
    }
    assertError(
      await call(s, 'POST', `/auth/service/users/${u.openid}/decrypt`, { form: enc, headers: service }),
      400,
      'invalid_request',
    );
    assertError(
      await decrypt(s, u.openid, { encryptedData: 'A'.repeat(17 * 1024), iv: enc.iv }),
      413,
      'payload_too_large',
    );
    // None of these revoked anything.
    assert.equal((await call(s, 'GET', '/auth/session', { headers: bearer(u.access_token) })).status, 200);
  });

  test('five failed decryptions revoke the newest live session; the older one lives on and becomes the newest', async () => {
    const older = await loginAs(s, 'locked.1');
    const olderKey = s.sim.sessionKeyOf('locked');
    const newer = await loginAs(s, 'locked.2');
    await loginAs(s, 'stranger.1');
    const junk = s.sim.encrypt('stranger', weRun(s, [1])); // no key of locked's opens it
    for (let i = 0; i < 4; i++) assertError(await decrypt(s, older.openid, junk), 400, 'decrypt_failed');
    assert.equal((await call(s, 'GET', '/auth/session', { headers: bearer(newer.access_token) })).status, 200);
    assert.equal((await s.user(older.openid)).live_sessions, 2);
    assertError(await decrypt(s, older.openid, junk), 400, 'decrypt_failed');
    assertError(await call(s, 'GET', '/auth/session', { headers: bearer(newer.access_token) }), 401, 'session_revoked');
    assertError(
      await call(s, 'POST', '/auth/refresh', { body: { refresh_token: newer.refresh_token } }),
      401,
      'invalid_refresh_token',
    );
    assert.equal((await call(s, 'GET', '/auth/session', { headers: bearer(older.access_token) })).status, 200);
    assert.equal((await s.user(older.openid)).live_sessions, 1);
    const werun = weRun(s, [5]);
    assert.deepEqual((await decrypt(s, older.openid, s.sim.encrypt('locked', werun, { key: olderKey }))).json, {
      data: werun,
    });
    assert.equal((await sign(s, older.openid, { data: 'z' })).json.signature, loginSignature(olderKey, 'z'));
  });
});

// ------------------------------------------------------------ relay

describe('relay', () => {
  let s;
  before(async () => {
    s = await serviceStack();
  });

  test("a JSON API: WeChat's answer unchanged (status, content type, body), no-store, none of WeChat's other headers", async () => {
    const r = await relay(s, 'POST', 'wxa/msg_sec_check', {
      body: JSON.stringify({ content: 'hello', version: 2, scene: 1, openid: 'oX' }),
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get('content-type'), 'text/plain');
    assert.equal(r.json.errcode, 0);
    assert.equal(r.json.result.suggest, 'pass');
    assert.equal(r.headers.get('cache-control'), 'no-store');
    assert.equal(r.headers.get('x-sim-rid'), null, "WeChat's own header is not passed on");
    assert.equal(r.headers.get('x-wx-edge-error'), null, "WeChat's answer is not the worker's error");
    const sent = s.sim.relayed().at(-1);
    assert.equal(sent.method, 'POST');
    assert.equal(sent.path, '/wxa/msg_sec_check');
    assert.equal(sent.contentType, 'application/json');
    assert.deepEqual(JSON.parse(sent.body.toString('utf8')), { content: 'hello', version: 2, scene: 1, openid: 'oX' });
    assert.equal(sent.token, s.sim.accessToken());
    assert.equal(sent.tokenValid, true);
  });

  test("WeChat's refusal of the content (87014) comes back as WeChat sent it, not as an error of the worker", async () => {
    const r = await relay(s, 'POST', 'wxa/msg_sec_check', {
      body: JSON.stringify({ content: 'this has a forbidden-word in it' }),
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.errcode, 87014);
    assert.match(r.json.errmsg, /^risky content, rid: /);
    assert.equal(r.headers.get('x-wx-edge-error'), null);
  });

  test('an image API: the PNG bytes byte for byte, Content-Type image/png', async () => {
    const r = await relay(s, 'POST', 'wxa/getwxacodeunlimit', {
      body: JSON.stringify({ scene: 'id=42&from=share', page: 'pages/index/index', width: 280 }),
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(r.status, 200, r.text.slice(0, 200));
    assert.equal(r.headers.get('content-type'), 'image/png');
    assert.equal(r.headers.get('cache-control'), 'no-store');
    assert.equal(r.bytes.length, pngFor('id=42&from=share').length);
    assert.ok(r.bytes.equals(pngFor('id=42&from=share')), 'the PNG arrived changed');
  });

  test('a token invalidated mid-test: fetched again once, the call repeated, the PNG answered', async () => {
    await relay(s, 'POST', 'wxa/msg_sec_check', { body: '{"content":"warm"}' });
    s.sim.invalidateAccessToken();
    const before = s.sim.stats();
    const calls = s.sim.relayed().length;
    const r = await relay(s, 'POST', 'wxa/getwxacodeunlimit', {
      body: JSON.stringify({ scene: 'retry=1' }),
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(r.status, 200, r.text.slice(0, 200));
    assert.ok(r.bytes.equals(pngFor('retry=1')));
    const tries = s.sim.relayed().slice(calls);
    assert.deepEqual(
      tries.map((c) => [c.path, c.tokenValid]),
      [
        ['/wxa/getwxacodeunlimit', false],
        ['/wxa/getwxacodeunlimit', true],
      ],
    );
    assert.ok(tries[1].body.equals(tries[0].body), 'the same body both times');
    assert.equal(s.sim.stats().stable_token - before.stable_token, 1);
    assert.equal(s.sim.stats().stable_token_force - before.stable_token_force, 0);
  });

  test("a token refused twice: one retry only, then WeChat's 40001 answer as it came", async () => {
    await relay(s, 'POST', 'wxa/msg_sec_check', { body: '{"content":"warm"}' });
    s.sim.rejectTokens(3);
    const calls = s.sim.relayed().length;
    const r = await relay(s, 'POST', 'wxa/getwxacodeunlimit', { body: JSON.stringify({ scene: 'x' }) });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json?.errcode, 40001, r.text);
    assert.equal(s.sim.relayed().length - calls, 2, 'exactly one retry');
    s.sim.rejectTokens(0);
    // 40014 and 42001 are token errors too.
    for (const errcode of [40014, 42001]) {
      s.sim.failNext('/wxa/msg_sec_check', { errcode, errmsg: 'token' });
      const before = s.sim.relayed().length;
      const ok = await relay(s, 'POST', 'wxa/msg_sec_check', { body: '{"content":"fine"}' });
      assert.equal(ok.json?.errcode, 0, `${errcode}: ${ok.text}`);
      assert.equal(s.sim.relayed().length - before, 2, `${errcode}: one retry`);
    }
    // Another errcode is WeChat's business: passed on, no retry.
    s.sim.failNext('/wxa/msg_sec_check', { errcode: 45009, errmsg: 'reach max api daily quota limit' });
    const n = s.sim.relayed().length;
    const quota = await relay(s, 'POST', 'wxa/msg_sec_check', { body: '{"content":"fine"}' });
    assert.equal(quota.json?.errcode, 45009);
    assert.equal(s.sim.relayed().length - n, 1);
  });

  test("the query is the client's minus any access_token (any case), plus the worker's token; method, body bytes and content type pass", async () => {
    const marker = 'q' + randomBytes(6).toString('hex');
    const body = Buffer.concat([Buffer.from([0, 0xff, 0x0d, 0x0a, 0x89]), randomBytes(300)]);
    const r = await relay(
      s,
      'PUT',
      `sim/echo?a=1&access_token=CLIENT1&ACCESS_TOKEN=CLIENT2&Access_Token=CLIENT3&b=%2B%20&m=${marker}&access_token`,
      { body, headers: { 'content-type': 'application/octet-stream' } },
    );
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.method, 'PUT');
    assert.deepEqual(r.json.query, [
      ['a', '1'],
      ['b', '+ '],
      ['m', marker],
    ]);
    assert.equal(r.json.content_type, 'application/octet-stream');
    assert.ok(Buffer.from(r.json.body_base64, 'base64').equals(body), 'the body arrived changed');
    const sent = s.sim.relayed().at(-1);
    const tokens = sent.query.filter(([k]) => k.toLowerCase() === 'access_token');
    assert.deepEqual(tokens, [['access_token', s.sim.accessToken()]], 'only the worker token reaches WeChat');
    assert.ok(!JSON.stringify(sent.query).includes('CLIENT'), JSON.stringify(sent.query));
    for (const method of ['GET', 'DELETE', 'PATCH', 'POST']) {
      const m = await relay(s, method, 'sim/echo?x=1', method === 'GET' || method === 'DELETE' ? {} : { body: 'text' });
      assert.equal(m.status, 200, `${method}: ${m.text}`);
      assert.equal(m.json.method, method);
    }
  });

  test("the service token, the client's Authorization and the AppSecret never reach WeChat", async () => {
    await relay(s, 'POST', 'sim/echo', { body: 'x', headers: { 'content-type': 'text/plain' } });
    const all = s.sim.relayed();
    assert.ok(all.length >= 5);
    for (const c of all) {
      assert.equal(c.sawSecret, false, `the AppSecret went to ${c.path}`);
      assert.equal(c.headers.authorization, undefined, `Authorization went to ${c.path}`);
      const seen = JSON.stringify(c.headers) + JSON.stringify(c.query) + c.body.toString('latin1');
      assert.ok(!seen.includes(SERVICE_TOKEN), `the service token went to ${c.path}`);
      assert.ok(!seen.includes(s.appsecret), `the AppSecret went to ${c.path}`);
    }
  });

  test('credential and session-key paths are refused 403 relay_refused, whatever the case, and WeChat is not called', async () => {
    await relay(s, 'POST', 'wxa/msg_sec_check', { body: '{"content":"warm"}' });
    const before = s.sim.stats().requests;
    const refused = [
      ['GET', 'cgi-bin/token?grant_type=client_credential&appid=x&secret=y'],
      ['POST', 'cgi-bin/stable_token'],
      ['GET', 'cgi-bin/ticket/getticket?type=jsapi'],
      ['POST', 'cgi-bin/component/api_component_token'],
      ['GET', 'sns/jscode2session?js_code=x'],
      ['GET', 'sns/component/jscode2session'],
      ['GET', 'sns'],
      ['GET', 'wxa/checksession?openid=o'],
      ['GET', 'wxa/resetusersessionkey?openid=o'],
      ['GET', 'CGI-BIN/TOKEN'],
      ['POST', 'Cgi-Bin/Stable_Token'],
      ['POST', 'cgi-bin/STABLE_TOKEN'],
      ['GET', 'SNS/jscode2session'],
      ['GET', 'Sns/JsCode2Session'],
      ['GET', 'wxa/CheckSession'],
      ['GET', 'WXA/RESETUSERSESSIONKEY'],
      ['GET', 'cgi-bin/token/extra'],
    ];
    for (const [method, path] of refused) {
      const r = await relay(s, method, path, method === 'POST' ? { body: '{}' } : {});
      assertError(r, 403, 'relay_refused');
    }
    // Encodings and dot segments: refused one way or another, never relayed.
    const mangled = [
      'cgi-bin%2Ftoken',
      'cgi-bin/%74oken',
      'cgi-bin/token%00',
      'wxa%2F..%2Fcgi-bin%2Ftoken',
      'wxa/%2e%2e/cgi-bin/token',
      'wxa/.%2e/sns/jscode2session',
      './cgi-bin/token',
      'cgi-bin//token',
      'cgi-bin/./token',
      'sns/',
      'sim/../cgi-bin/stable_token',
      '/cgi-bin/token',
      '',
      'cgi-bin\\token',
      'sns;/jscode2session',
      'cgi-bin/token;x',
    ];
    for (const path of mangled) {
      const r = await rawRequest(s, 'GET', `/auth/service/wechat/${path}`, service);
      assert.ok([400, 403, 404].includes(r.status), `${path}: ${r.status} ${r.text}`);
      assert.ok(['invalid_request', 'relay_refused', 'not_found'].includes(r.json?.error), `${path}: ${r.text}`);
    }
    // Resolved by workerd before the worker sees them: still refused.
    for (const path of ['wxa/../cgi-bin/token', 'sim/../../wechat/sns/jscode2session']) {
      const r = await rawRequest(s, 'GET', `/auth/service/wechat/${path}`, service);
      assert.ok([403, 404].includes(r.status), `${path}: ${r.status} ${r.text}`);
    }
    assert.equal(s.sim.stats().requests, before, 'a refused path reached WeChat');
  });

  test('TRACE is never relayed; a body over 2 MiB → 413; exactly 2 MiB passes', async () => {
    const before = s.sim.stats().requests;
    // TRACE reaches the worker and is refused (404: the route takes any
    // other method); workerd itself answers TRACK, a method it does not
    // implement, with 501 before the worker sees it. Neither is relayed.
    for (const [method, refused] of [
      ['TRACE', [404]],
      ['TRACK', [404, 501]],
    ]) {
      const r = await rawRequest(s, method, '/auth/service/wechat/sim/echo', service);
      assert.ok(refused.includes(r.status), `${method}: ${r.status}`);
    }
    const big = await relay(s, 'POST', 'sim/echo', {
      body: Buffer.alloc(2 * 1024 * 1024 + 1, 0x61),
      headers: { 'content-type': 'application/octet-stream' },
    });
    assertError(big, 413, 'payload_too_large');
    assert.equal(s.sim.stats().requests, before, 'nothing relayed');
    const exact = Buffer.alloc(2 * 1024 * 1024, 0x62);
    const ok = await relay(s, 'POST', 'sim/echo', {
      body: exact,
      headers: { 'content-type': 'application/octet-stream' },
    });
    assert.equal(ok.status, 200, ok.text.slice(0, 200));
    assert.equal(Buffer.from(ok.json.body_base64, 'base64').length, exact.length);
  });

  test("WeChat's own HTTP 500 comes back as it was; a WeChat that does not answer in time → 502 wechat_unavailable", async () => {
    s.sim.failNext('/sim/echo', { http500: true });
    const r = await relay(s, 'GET', 'sim/echo');
    assert.equal(r.status, 500, r.text);
    assert.match(r.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(r.text, /500 Internal Server Error/);
    assert.equal(r.headers.get('x-wx-edge-error'), null);
    s.sim.failNext('/sim/echo', { slow: true });
    assertError(await relay(s, 'GET', 'sim/echo'), 502, 'wechat_unavailable');
  });

  test('WX_RELAY_PATHS narrows the relay to its prefixes, by whole segments; it never reopens a refused path', async () => {
    const narrow = await serviceStack({ WX_RELAY_PATHS: 'wxa/msg_sec_check, sim,cgi-bin' });
    const ok = await relay(narrow, 'POST', 'wxa/msg_sec_check', { body: '{"content":"x"}' });
    assert.equal(ok.json?.errcode, 0, ok.text);
    assert.equal((await relay(narrow, 'GET', 'sim/echo')).json?.errcode, 0);
    const before = narrow.sim.stats().requests;
    for (const path of [
      'wxa/getwxacodeunlimit',
      'wxa/msg_sec_check_v2',
      'wxa',
      'simx/echo',
      'cgi-bin/token',
      'cgi-bin/stable_token',
      'sns/jscode2session',
    ]) {
      assertError(await relay(narrow, 'POST', path, { body: '{}' }), 403, 'relay_refused');
    }
    assert.equal(narrow.sim.stats().requests, before);
  });
});

// ------------------------------------------------------------ logs

test('one log line per service call, event named, the user named only once admitted; no secret in any log', async () => {
  const s = await serviceStack();
  const u = await loginAs(s, 'logged.1');
  const marker = 'm' + randomBytes(6).toString('hex');
  await check(s, u.openid);
  await reset(s, u.openid);
  await sign(s, u.openid, { data: `sign-${marker}` });
  await decrypt(s, u.openid, s.sim.encrypt('logged', weRun(s, [3])));
  await relay(s, 'GET', `sim/echo?secretish=${marker}`);
  await relay(s, 'GET', 'cgi-bin/token');
  await check(s, u.openid, bearer(u.access_token)); // refused
  await new Promise((r) => setTimeout(r, 300));
  const lines = s
    .logs()
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('{') && l.includes('"event"'))
    .map((l) => JSON.parse(l));
  const events = lines.map((l) => `${l.event}:${l.outcome}`);
  for (const e of [
    'service_check:ok',
    'service_reset:ok',
    'service_sign:ok',
    'service_decrypt:ok',
    'service_relay:ok',
  ]) {
    assert.ok(events.includes(e), `${e} in ${events.join(' ')}`);
  }
  assert.ok(
    lines.some((l) => l.event === 'service_relay' && l.outcome === 'error' && l.code === 'relay_refused'),
    'the refusal is logged',
  );
  const refused = lines.filter((l) => l.status === 401 && l.code === 'invalid_token');
  assert.ok(refused.length >= 1, 'the refused caller is logged');
  for (const l of refused) assert.ok(!('user' in l), `a refused caller names a user: ${JSON.stringify(l)}`);
  assert.ok(lines.some((l) => l.event === 'service_check' && l.outcome === 'ok' && typeof l.user === 'string'));

  // Every stack of this file: no secret, no key, no WeChat token, no relayed query or signed data.
  for (const st of stacks) {
    const text = st.logs();
    const secrets = [SERVICE_TOKEN, SERVICE_TOKEN_PREVIOUS, TEST_ADMIN_TOKEN, st.appsecret, st.tokenSecret];
    for (const user of users) secrets.push(...st.sim.sessionKeysOf(user));
    for (const c of st.sim.relayed()) if (c.token) secrets.push(c.token);
    for (const secret of secrets) {
      assert.ok(!text.includes(secret), `a log carries ${String(secret).slice(0, 6)}…`);
    }
    assert.ok(!text.includes(marker), 'a relayed query or signed data is in the log');
  }
});
