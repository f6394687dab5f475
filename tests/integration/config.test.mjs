// Configuration: a missing or invalid required setting never serves
// silently. Every request gets 500 server_misconfigured naming the variable
// (never its value), and the log says the same. Pins shared/contract.md.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startStack,
  call,
  login,
  bearer,
  TEST_APPSECRET,
  TEST_TOKEN_SECRET,
  TEST_REFRESH_SECRET,
  TEST_IDENTITY_KEY,
} from '../support/stack.mjs';

// ---------------------------------------------------------------- helpers

const SECRETS = {
  WX_APPSECRET: TEST_APPSECRET,
  TOKEN_SECRET: TEST_TOKEN_SECRET,
  REFRESH_SECRET: TEST_REFRESH_SECRET,
  IDENTITY_KEY: TEST_IDENTITY_KEY,
};

/** Every stack started here (closed after its test), so the last test can read all their logs. */
const stacks = [];

async function start(t, opts) {
  const s = await startStack(opts);
  stacks.push(s);
  t.after(() => s.close());
  return s;
}

function assertMisconfigured(r, variable, { notContaining = [] } = {}) {
  assert.equal(r.status, 500, r.text);
  assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
  assert.equal(r.json?.error, 'server_misconfigured', r.text);
  assert.deepEqual(Object.keys(r.json).sort(), ['error', 'message'], r.text);
  assert.ok(r.json.message.includes(variable), `message names ${variable}: ${r.json.message}`);
  for (const v of [...notContaining, ...Object.values(SECRETS)]) {
    assert.ok(!r.text.includes(v), `the response echoes a configured value: ${r.text}`);
  }
}

/** The requests "every request" covers: login, refresh, session, a proxied path (with and without a token), the JWKS. */
const EVERY = [
  ['POST', '/auth/login', { body: { code: 'cfg.1' } }],
  ['POST', '/auth/refresh', { body: { refresh_token: 'x.y' } }],
  ['GET', '/auth/session', { headers: bearer('x') }],
  ['GET', '/api/orders?x=1', { headers: bearer('some.token.here') }],
  ['GET', '/api/orders', {}],
  ['POST', '/api/orders', { body: { a: 1 } }],
  ['GET', '/.well-known/jwks.json', {}],
];

async function assertEveryRequestMisconfigured(s, variable, opts) {
  const originBefore = s.origin.requests.length;
  for (const [method, p, o] of EVERY) {
    const r = await call(s, method, p, o);
    assert.equal(r.status, 500, `${method} ${p}: ${r.status} ${r.text}`);
    assertMisconfigured(r, variable, opts);
  }
  assert.equal(s.origin.requests.length, originBefore, 'nothing was proxied');
  assert.equal(s.sim.stats().code2session, 0, 'WeChat was not called');
}

/** Waits until the worker's log mentions `text` (workerd's stdio is asynchronous). */
async function logsMention(s, text, ms = 2000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (s.logs().includes(text)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return s.logs().includes(text);
}

// -------------------------------------------------------- missing variables

for (const variable of ['WX_APPID', 'WX_APPSECRET', 'ORIGIN_URL', 'TOKEN_SECRET', 'REFRESH_SECRET']) {
  test(`${variable} missing: every request → 500 server_misconfigured naming it; the log names it`, async (t) => {
    const s = await start(t, { omit: [variable] });
    await assertEveryRequestMisconfigured(s, variable);
    assert.ok(await logsMention(s, variable), `the log names ${variable}: ${JSON.stringify(s.logs())}`);
  });
}

test('a blank required variable counts as missing', async (t) => {
  const s = await start(t, { vars: { WX_APPSECRET: '   ' } });
  await assertEveryRequestMisconfigured(s, 'WX_APPSECRET');
});

test('misconfigured: /auth/* routing errors (unknown path, wrong method) are also 500 server_misconfigured', async (t) => {
  const s = await start(t, { omit: ['TOKEN_SECRET'] });
  assertMisconfigured(await call(s, 'GET', '/auth/nope'), 'TOKEN_SECRET');
  assertMisconfigured(await call(s, 'GET', '/auth/login'), 'TOKEN_SECRET');
});

// --------------------------------------------------------- invalid values

test("TOKEN_SECRET 'short' → 500 naming TOKEN_SECRET, never its value", async (t) => {
  const s = await start(t, { vars: { TOKEN_SECRET: 'short' } });
  await assertEveryRequestMisconfigured(s, 'TOKEN_SECRET');
  const r = await call(s, 'POST', '/auth/login', { body: { code: 'cfg.2' } });
  // "short" is also an English word a message may use ("too short"); the
  // value itself must not be quoted or echoed.
  assert.ok(!/['"`=]\s*short\b|\bshort['"`]/.test(r.json.message), r.json.message);
  assert.ok(await logsMention(s, 'TOKEN_SECRET'));
});

test('TOKEN_SECRET too short or too predictable → 500 naming it, never its value', async (t) => {
  for (const value of ['Zq9xW2kP-tiny', 'q'.repeat(48)]) {
    const s = await start(t, { vars: { TOKEN_SECRET: value } });
    await assertEveryRequestMisconfigured(s, 'TOKEN_SECRET', { notContaining: [value] });
    assert.ok(await logsMention(s, 'TOKEN_SECRET'));
    assert.ok(!s.logs().includes(value), 'the log echoes the TOKEN_SECRET value');
  }
});

test('REFRESH_SECRET too short or too predictable → 500 naming it, never its value', async (t) => {
  for (const value of ['Zq9xW2kP-tiny', 'r'.repeat(48)]) {
    const s = await start(t, { vars: { REFRESH_SECRET: value } });
    await assertEveryRequestMisconfigured(s, 'REFRESH_SECRET', { notContaining: [value] });
    assert.ok(await logsMention(s, 'REFRESH_SECRET'));
    assert.ok(!s.logs().includes(value), 'the log echoes the REFRESH_SECRET value');
  }
});

test('bad SESSION_CHECK → 500 naming SESSION_CHECK, not echoing the value', async (t) => {
  const s = await start(t, { vars: { SESSION_CHECK: 'sometimes-Xq7' } });
  await assertEveryRequestMisconfigured(s, 'SESSION_CHECK', { notContaining: ['sometimes-Xq7'] });
  assert.ok(await logsMention(s, 'SESSION_CHECK'));
  assert.ok(!s.logs().includes('sometimes-Xq7'));
});

test('bad IDENTITY_KEY → 500 naming IDENTITY_KEY, not echoing the value', async (t) => {
  const bad = 'not-a-seed-Vb81!!';
  const s = await start(t, { vars: { IDENTITY_KEY: bad } });
  await assertEveryRequestMisconfigured(s, 'IDENTITY_KEY', { notContaining: [bad] });
  assert.ok(await logsMention(s, 'IDENTITY_KEY'));
  assert.ok(!s.logs().includes(bad));
});

test('no SESSIONS KV binding → 500 naming SESSIONS', async (t) => {
  const s = await start(t, { kvBinding: false });
  await assertEveryRequestMisconfigured(s, 'SESSIONS');
});

test('no SESSIONS KV binding: the log names SESSIONS', async (t) => {
  const s = await start(t, { kvBinding: false });
  await call(s, 'POST', '/auth/login', { body: { code: 'cfg.3' } });
  await call(s, 'GET', '/.well-known/jwks.json');
  assert.ok(await logsMention(s, 'SESSIONS'), `the log names SESSIONS: ${JSON.stringify(s.logs())}`);
});

test('no AUTHORITY Durable Object binding → 500 naming AUTHORITY, and the log says so', async (t) => {
  const s = await start(t, { authorityBinding: false });
  await assertEveryRequestMisconfigured(s, 'AUTHORITY');
  assert.ok(await logsMention(s, 'AUTHORITY'), `the log names AUTHORITY: ${JSON.stringify(s.logs())}`);
});

test('SESSION_MAX_AGE and ADMIN_TOKEN are checked like the rest', async (t) => {
  for (const [name, value] of [
    ['SESSION_MAX_AGE', 'ninety'],
    ['SESSION_MAX_AGE', '60'],
    ['ADMIN_TOKEN', 'tooFewChars9'],
  ]) {
    const s = await start(t, { vars: { [name]: value } });
    await assertEveryRequestMisconfigured(s, name, { notContaining: [value] });
  }
});

test("ADMIN_TOKEN 31 × 'a' + 'b' → 500 naming ADMIN_TOKEN (strength-checked like TOKEN_SECRET)", async (t) => {
  const value = 'a'.repeat(31) + 'b';
  const s = await start(t, { vars: { ADMIN_TOKEN: value } });
  await assertEveryRequestMisconfigured(s, 'ADMIN_TOKEN', { notContaining: [value] });
});

test('http:// ORIGIN_URL or WX_API_BASE off loopback → 500 naming the variable; loopback http:// is fine', async (t) => {
  for (const [name, value] of [
    ['ORIGIN_URL', 'http://api.example.com/v1'],
    ['WX_API_BASE', 'http://api.weixin.qq.com'],
    ['ORIGIN_URL', 'http://10.1.2.3:8080'],
  ]) {
    const s = await start(t, { vars: { [name]: value } });
    await assertEveryRequestMisconfigured(s, name, { notContaining: [value] });
    assert.match((await call(s, 'GET', '/auth/session')).json.message, /https:\/\//);
  }
  // The stack itself runs on http://127.0.0.1 (WeChat simulator and origin): it serves.
  const ok = await start(t, {});
  assert.equal((await call(ok, 'GET', '/.well-known/jwks.json')).status, 200);
});

for (const binding of ['WX_LOGIN_LIMITER', 'ADMIN_LIMITER', 'SERVICE_LIMITER']) {
  test(`no ${binding} rate-limit binding → 500 naming ${binding}, and the log says so`, async (t) => {
    const names = [
      'LOGIN_LIMITER',
      'REFRESH_LIMITER',
      'PHONE_LIMITER',
      'WX_LOGIN_LIMITER',
      'ADMIN_LIMITER',
      'SERVICE_LIMITER',
    ];
    const ratelimits = Object.fromEntries(
      names
        .filter((n) => n !== binding)
        .map((n, i) => [n, { namespace_id: String(3001 + i), simple: { limit: 10_000, period: 60 } }]),
    );
    const s = await start(t, { miniflare: { ratelimits } });
    await assertEveryRequestMisconfigured(s, binding);
    assert.ok(await logsMention(s, binding), `the log names ${binding}: ${JSON.stringify(s.logs())}`);
  });
}

// ---------------------------------------------------------- optional key

test('without IDENTITY_KEY: the JWKS is {keys: []} and no X-WX-Identity is sent, X-WX-OpenID still is', async (t) => {
  const s = await start(t, { omit: ['IDENTITY_KEY'] });
  const j = await call(s, 'GET', '/.well-known/jwks.json');
  assert.equal(j.status, 200, j.text);
  assert.match(j.headers.get('content-type') ?? '', /^application\/json/);
  assert.deepEqual(j.json, { keys: [] });

  const tok = await login(s, 'nokey.1');
  const r = await call(s, 'GET', '/api/me', { headers: { ...bearer(tok.access_token), 'X-WX-Identity': 'forged' } });
  assert.equal(r.status, 200, r.text);
  const names = r.json.rawHeaders.map(([k]) => k.toLowerCase());
  assert.ok(!names.includes('x-wx-identity'), 'no X-WX-Identity without IDENTITY_KEY (and the forged one is stripped)');
  assert.equal(r.json.headers['x-wx-openid'], tok.openid);
  assert.equal(r.json.headers['x-wx-unionid'], tok.unionid);
  assert.equal(r.json.headers['x-wx-appid'], s.appid);
});

// ------------------------------------------------------------------- logs

test('logs of every stack above: no AppSecret, TOKEN_SECRET or IDENTITY_KEY value', async () => {
  await new Promise((r) => setTimeout(r, 200));
  assert.ok(stacks.length >= 10, `${stacks.length} stacks`);
  for (const s of stacks) {
    const logs = s.logs();
    for (const [name, value] of Object.entries(SECRETS)) {
      assert.ok(!logs.includes(value), `${name}'s value is in the log`);
    }
    for (const value of [s.appsecret, s.tokenSecret, s.identityKey]) {
      if (typeof value === 'string' && value.trim().length >= 8)
        assert.ok(!logs.includes(value), 'a configured secret is in the log');
    }
  }
});
