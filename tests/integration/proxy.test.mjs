// The authenticated proxy: what reaches the origin (and what never does),
// X-WX-Identity verified the way an origin would, responses passed back
// unchanged, PUBLIC_PATHS and SESSION_CHECK. Pins shared/contract.md.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createPublicKey, randomBytes, verify } from 'node:crypto';
import { createServer } from 'node:http';
import { startStack, call, login, bearer, readResponse } from '../support/stack.mjs';
import { serve } from '../support/serve.mjs';

let stack;
before(async () => {
  stack = await startStack();
});
after(async () => {
  await stack?.close();
});

// ---------------------------------------------------------------- helpers

const now = () => Math.floor(Date.now() / 1000);
const openidOf = (s, user) =>
  'o' + createHash('sha256').update(`openid:${s.appid}:${user}`).digest('base64url').slice(0, 27);

function assertError(r, status, code) {
  assert.equal(r.status, status, r.text);
  assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
  assert.equal(r.json?.error, code, r.text);
  assert.equal(typeof r.json.message, 'string');
  assert.ok(r.json.message.length > 0);
  for (const k of Object.keys(r.json)) assert.ok(['error', 'message', 'wechat_errcode'].includes(k), r.text);
  assert.ok(!('wechat_errcode' in r.json), r.text);
}

/** A header name as the contract reads it: lower-cased, `_` as `-`. */
const norm = (name) => name.trim().toLowerCase().replaceAll('_', '-');
/** Every [name, value] the origin received whose normalized name is `n`. */
const raw = (echo, n) => echo.rawHeaders.filter(([k]) => norm(k) === n);
// Identity: every x-wx-* header but the client address, which the worker
// adds to every proxied request (checked in boundary.test.mjs).
const identityHeaders = (echo) =>
  echo.rawHeaders.filter(([k]) => norm(k).startsWith('x-wx-') && norm(k) !== 'x-wx-client-ip');

/** fetch with headers as a list of pairs (duplicates, odd spellings kept). */
async function send(s, method, p, headerPairs = [], body) {
  return readResponse(
    await fetch(s.url + p, { method, headers: headerPairs, body, redirect: 'manual', duplex: 'half' }),
  );
}

const SPOOFS = [
  ['X-WX-OpenID', 'oSPOOF1'],
  ['x-wx-openid', 'oSPOOF2'],
  ['X_WX_OPENID', 'oSPOOF3'],
  ['x_wx_phone', '13900000000-SPOOF'],
  ['x_Wx-Phone', '13900000002-SPOOF'],
  ['X-WX-Phone', '13900000001-SPOOF'],
  ['X-WX-Phone-Country', 'SPOOF-CC'],
  ['X-WX-UnionID', 'uSPOOF'],
  ['X-WX-AppID', 'wxSPOOF'],
  ['X-Wx-Identity', 'forged.assertion.value'],
  ['x-wx-identity', 'forged.again'],
  ['X-WX-Anything-New', 'spoof'],
];
const SPOOF_VALUES = SPOOFS.map(([, v]) => v);

function assertNoSpoofs(echo) {
  for (const [k, v] of echo.rawHeaders) {
    for (const bad of SPOOF_VALUES) assert.ok(!v.includes(bad), `spoofed value reached the origin: ${k}: ${v}`);
  }
  assert.deepEqual(raw(echo, 'x-wx-anything-new'), []);
}

const b64jsonDecode = (part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));

async function jwks(s) {
  const r = await call(s, 'GET', '/.well-known/jwks.json');
  assert.equal(r.status, 200, r.text);
  assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
  return r.json;
}

/** Verifies an X-WX-Identity the way an origin would; returns header and claims. */
async function verifyIdentity(s, assertion) {
  const [h, p, sig] = assertion.split('.');
  const header = b64jsonDecode(h);
  const claims = b64jsonDecode(p);
  const { keys } = await jwks(s);
  const jwk = keys.find((k) => k.kid === header.kid);
  assert.ok(jwk, `kid ${header.kid} is in the JWKS`);
  const key = createPublicKey({ key: jwk, format: 'jwk' });
  const ok = verify(null, Buffer.from(`${h}.${p}`), key, Buffer.from(sig, 'base64url'));
  return { header, claims, ok };
}

// -------------------------------------------------------------- requests

test('no token → 401 unauthorized, nothing reaches the origin', async () => {
  const before = stack.origin.requests.length;
  assertError(await call(stack, 'GET', '/api/orders'), 401, 'unauthorized');
  assertError(await call(stack, 'POST', '/api/orders', { body: { a: 1 } }), 401, 'unauthorized');
  assertError(await call(stack, 'GET', '/api/orders', { headers: { authorization: 'Bearer ' } }), 401, 'unauthorized');
  assertError(
    await call(stack, 'GET', '/api/orders', { headers: { 'x-wx-openid': openidOf(stack, 'victim') } }),
    401,
    'unauthorized',
  );
  const bad = await call(stack, 'GET', '/api/orders', { headers: bearer('not-a-token') });
  assertError(bad, 401, 'invalid_token');
  // The worker's own errors are marked, with the RFC 6750 challenge on 401.
  assert.equal(bad.headers.get('x-wx-edge-error'), 'invalid_token');
  assert.equal(bad.headers.get('www-authenticate'), 'Bearer realm="wx-edge", error="invalid_token"');
  assert.equal(stack.origin.requests.length, before);
});

test('GET: method, raw path and raw query reach the origin unchanged', async () => {
  const t = await login(stack, 'getter.1');
  const p = '/api/orders/%E4%B8%AD/items?a=1&b=hello%20world&c=%2F&c=2&empty=&plus=a+b';
  const r = await call(stack, 'GET', p, { headers: bearer(t.access_token) });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.method, 'GET');
  assert.equal(r.json.path, '/api/orders/%E4%B8%AD/items');
  assert.equal(r.json.query, 'a=1&b=hello%20world&c=%2F&c=2&empty=&plus=a+b');
  assert.equal(r.json.bodyLength, 0);

  const root = await call(stack, 'GET', '/', { headers: bearer(t.access_token) });
  assert.equal(root.status, 200, root.text);
  assert.equal(root.json.path, '/');
  assert.equal(root.json.query, '');
});

test('POST JSON, PUT 100 KB text, POST 100 KB binary, DELETE, PATCH: method and body reach the origin', async () => {
  const t = await login(stack, 'poster.1');
  const auth = bearer(t.access_token);

  const json = JSON.stringify({ item: 'tea', qty: 2, note: '中文 ✓' });
  const a = await call(stack, 'POST', '/api/orders?src=app', { body: json, headers: auth });
  assert.equal(a.status, 200, a.text);
  assert.equal(a.json.method, 'POST');
  assert.equal(a.json.path, '/api/orders');
  assert.equal(a.json.query, 'src=app');
  assert.equal(a.json.body, json);
  assert.equal(a.json.bodyLength, Buffer.byteLength(json));
  assert.equal(a.json.headers['content-type'], 'application/json');

  let text = '';
  for (let i = 0; text.length < 100 * 1024; i++) text += `line ${i} of a long text body\n`;
  text = text.slice(0, 100 * 1024);
  const b = await call(stack, 'PUT', '/api/doc', { body: text, headers: { ...auth, 'content-type': 'text/plain' } });
  assert.equal(b.status, 200, b.text.slice(0, 200));
  assert.equal(b.json.method, 'PUT');
  assert.equal(b.json.bodyLength, 100 * 1024);
  assert.equal(b.json.body, text);

  const bin = randomBytes(100 * 1024);
  const c = await send(
    stack,
    'POST',
    '/api/upload',
    [
      ['authorization', `Bearer ${t.access_token}`],
      ['content-type', 'application/octet-stream'],
    ],
    bin,
  );
  assert.equal(c.status, 200, c.text.slice(0, 200));
  assert.equal(c.json.bodyLength, bin.length);
  assert.equal(c.json.body, bin.toString('utf8'), 'the same bytes arrived');
  assert.equal(c.json.headers['content-type'], 'application/octet-stream');

  const d = await call(stack, 'DELETE', '/api/orders/7', { headers: auth });
  assert.equal(d.status, 200, d.text);
  assert.equal(d.json.method, 'DELETE');
  assert.equal(d.json.path, '/api/orders/7');

  const e = await call(stack, 'PATCH', '/api/orders/7', { body: { qty: 3 }, headers: auth });
  assert.equal(e.status, 200, e.text);
  assert.equal(e.json.method, 'PATCH');
  assert.equal(e.json.body, '{"qty":3}');
});

test('headers: spoofed identity headers in every spelling never reach the origin; Authorization is not forwarded; the worker adds its own once', async () => {
  const t = await login(stack, 'hdr.1');
  const r = await send(
    stack,
    'POST',
    '/api/echo',
    [
      ...SPOOFS,
      ['X-WX-OpenID', 'oSPOOF1'], // duplicated
      ['authorization', `Bearer ${t.access_token}`],
      ['X-Request-Id', 'req-42'],
      ['Accept', 'application/json'],
      ['X-Dup', 'one'],
      ['X-Dup', 'two'],
      ['X-WXY', 'not an identity header'],
      ['X_Custom_Header', 'underscores pass'],
      ['User-Agent', 'wechat-miniprogram-test'],
      ['Referer', `https://servicewechat.com/${stack.appid}/devtools/page-frame.html`],
      ['content-type', 'application/json'],
    ],
    '{"x":1}',
  );
  assert.equal(r.status, 200, r.text);
  const echo = r.json;
  assertNoSpoofs(echo);

  assert.deepEqual(raw(echo, 'authorization'), [], 'Authorization is not forwarded');
  assert.ok(!JSON.stringify(echo.rawHeaders).includes(t.access_token), 'the access token is not forwarded anywhere');

  assert.deepEqual(
    raw(echo, 'x-wx-openid').map(([, v]) => v),
    [t.openid],
  );
  assert.deepEqual(
    raw(echo, 'x-wx-unionid').map(([, v]) => v),
    [t.unionid],
  );
  assert.deepEqual(
    raw(echo, 'x-wx-appid').map(([, v]) => v),
    [stack.appid],
  );
  assert.equal(raw(echo, 'x-wx-identity').length, 1);
  assert.deepEqual(raw(echo, 'x-wx-phone'), [], 'no phone bound → no X-WX-Phone');
  assert.deepEqual(raw(echo, 'x-wx-phone-country'), []);
  assert.deepEqual(
    identityHeaders(echo)
      .map(([k]) => norm(k))
      .sort(),
    ['x-wx-appid', 'x-wx-identity', 'x-wx-openid', 'x-wx-unionid'],
  );

  // Every other header passes on.
  assert.equal(echo.headers['x-request-id'], 'req-42');
  assert.equal(echo.headers.accept, 'application/json');
  assert.equal(echo.headers['x-dup'], 'one, two');
  assert.equal(echo.headers['x-wxy'], 'not an identity header');
  // Underscore names do travel this far, so the stripping above is real.
  assert.equal(echo.headers['x_custom_header'], 'underscores pass');
  assert.equal(echo.headers['user-agent'], 'wechat-miniprogram-test');
  assert.equal(echo.headers.referer, `https://servicewechat.com/${stack.appid}/devtools/page-frame.html`);
  assert.equal(echo.body, '{"x":1}');
  // The session_key never leaves the worker, not even towards the origin.
  const sk = stack.sim.sessionKeyOf('hdr');
  assert.ok(sk);
  const assertionClaims = b64jsonDecode(raw(echo, 'x-wx-identity')[0][1].split('.')[1]);
  assert.ok(!JSON.stringify(echo).includes(sk) && !JSON.stringify(assertionClaims).includes(sk));
});

test('headers: a user without unionid gets no X-WX-UnionID', async () => {
  const t = await login(stack, 'nounionp.1');
  const r = await send(stack, 'GET', '/api/me', [
    ['authorization', `Bearer ${t.access_token}`],
    ['X-WX-UnionID', 'uSPOOF'],
  ]);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(raw(r.json, 'x-wx-unionid'), []);
  assert.deepEqual(
    raw(r.json, 'x-wx-openid').map(([, v]) => v),
    [t.openid],
  );
  const { claims, ok } = await verifyIdentity(stack, raw(r.json, 'x-wx-identity')[0][1]);
  assert.ok(ok);
  assert.ok(!('unionid' in claims) || claims.unionid == null, JSON.stringify(claims));
});

// --------------------------------------------------------------- identity

test('JWKS: one Ed25519 signing key', async () => {
  const { keys } = await jwks(stack);
  assert.equal(keys.length, 1);
  const k = keys[0];
  assert.equal(k.kty, 'OKP');
  assert.equal(k.crv, 'Ed25519');
  assert.equal(k.alg, 'EdDSA');
  assert.equal(k.use, 'sig');
  assert.equal(typeof k.kid, 'string');
  assert.ok(k.kid.length > 0);
  assert.equal(Buffer.from(k.x, 'base64url').length, 32);
  assert.ok(!('d' in k), 'the private part is not published');
  assert.ok(!JSON.stringify(keys).includes(stack.identityKey));
  assert.ok(!JSON.stringify(keys).includes(Buffer.from(stack.identityKey, 'base64').toString('base64url')));
  // It is the public half of IDENTITY_KEY.
  const seed = Buffer.from(stack.identityKey, 'base64');
  const priv = createPublicKey({
    key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]),
    format: 'der',
    type: 'pkcs8',
  });
  assert.equal(priv.export({ format: 'jwk' }).x, k.x);
});

test('X-WX-Identity verifies against the JWKS with iss, aud (origin), sub (openid), iat/exp ≤ 300 s; one per session, reused', async () => {
  const t = await login(stack, 'ident.1');
  // The same user's second session.
  const t2 = await login(stack, 'ident.2');
  assert.equal(t2.openid, t.openid);
  const get = async (tokens = t) => {
    const r = await call(stack, 'GET', '/api/whoami', { headers: bearer(tokens.access_token) });
    assert.equal(r.status, 200, r.text);
    const v = raw(r.json, 'x-wx-identity');
    assert.equal(v.length, 1);
    return v[0][1];
  };
  const a1 = await get();
  const a2 = await get(t2);
  // Within the first half of its life the session's assertion is reused
  // (the contract allows it; jti names the assertion, not the request).
  assert.equal(await get(), a1);
  const { keys } = await jwks(stack);
  const seen = [];
  for (const a of [a1, a2]) {
    const { header, claims, ok } = await verifyIdentity(stack, a);
    assert.ok(ok, 'the signature verifies with the JWKS key');
    assert.equal(header.alg, 'EdDSA');
    assert.equal(header.kid, keys[0].kid);
    assert.equal(typeof header.typ, 'string');
    assert.ok(header.typ.length > 0);
    assert.notEqual(header.typ.toLowerCase(), 'at+jwt', 'not typed as an access token');
    assert.equal(claims.iss, 'wx-edge');
    assert.equal(claims.aud, new URL(stack.origin.url).origin);
    assert.equal(claims.sub, t.openid);
    assert.equal(claims.unionid, t.unionid);
    assert.ok(Number.isInteger(claims.iat) && Number.isInteger(claims.exp));
    assert.ok(claims.exp > claims.iat && claims.exp - claims.iat <= 300, `iat ${claims.iat} exp ${claims.exp}`);
    assert.ok(Math.abs(claims.iat - now()) <= 5);
    assert.equal(typeof claims.jti, 'string');
    assert.ok(claims.jti.length >= 16);
    seen.push(claims.jti);
  }
  assert.notEqual(seen[0], seen[1], 'another session, another assertion');

  // The verification is real: a changed claim or signature fails.
  const [h, p, s] = a1.split('.');
  const forgedClaims = Buffer.from(JSON.stringify({ ...b64jsonDecode(p), sub: 'oAttacker' })).toString('base64url');
  assert.equal((await verifyIdentity(stack, `${h}.${forgedClaims}.${s}`)).ok, false);
  const sig = Buffer.from(s, 'base64url');
  sig[0] ^= 1;
  assert.equal((await verifyIdentity(stack, `${h}.${p}.${sig.toString('base64url')}`)).ok, false);
});

test('ORIGIN_URL with a base path: path and query are appended to it; aud is its origin only', async () => {
  const s = await startStack({ vars: { ORIGIN_URL: `${stack.origin.url}/base/` } });
  try {
    const t = await login(s, 'based.1');
    const before = stack.origin.requests.length;
    const r = await call(s, 'GET', '/x/y?q=1', { headers: bearer(t.access_token) });
    assert.equal(r.status, 200, r.text);
    assert.equal(stack.origin.requests.length, before + 1, 'reached the configured origin');
    assert.equal(r.json.path, '/base/x/y');
    assert.equal(r.json.query, 'q=1');
    const { claims, ok } = await verifyIdentity(s, raw(r.json, 'x-wx-identity')[0][1]);
    assert.ok(ok);
    assert.equal(claims.aud, new URL(stack.origin.url).origin);
  } finally {
    await s.close();
  }
});

// --------------------------------------------------------------- responses

test('origin responses come back unchanged: 404 and 500 with their headers and bodies, 204', async () => {
  const t = await login(stack, 'resp.1');
  for (const code of [401, 404, 500, 503, 201]) {
    const r = await call(stack, 'GET', `/api/status/${code}?k=v`, { headers: bearer(t.access_token) });
    assert.equal(r.status, code, r.text);
    assert.equal(r.headers.get('x-origin-test'), 'yes');
    // Not marked as the worker's: clients refresh only on a marked 401.
    assert.equal(r.headers.get('x-wx-edge-error'), null);
    assert.equal(r.headers.get('content-type'), 'application/json');
    assert.equal(r.json.path, `/api/status/${code}`, 'the origin body, not a worker error');
    assert.equal(r.json.query, 'k=v');
    assert.ok(!('error' in r.json));
  }
  const n = await call(stack, 'DELETE', '/api/status/204', { headers: bearer(t.access_token) });
  assert.equal(n.status, 204);
  assert.equal(n.text, '');
  assert.equal(n.headers.get('x-origin-test'), 'yes');
});

/**
 * An origin that answers as if it were the worker: its error marker and
 * identity headers on a 503 (`/forge/503`), a 401 (`/forge/401`), and on a
 * 1 MB body streamed in chunks (`/forge/big`).
 */
async function startForgingOrigin() {
  const server = createServer((req, res) => {
    req.resume();
    const forged = {
      'X-WX-Edge-Error': 'store_unavailable',
      'x-wx-openid': 'oForged',
      X_WX_Phone: '110',
      'Retry-After': '1',
      'X-Origin-Test': 'yes',
      'Set-Cookie': ['a=1; Path=/', 'b=2; Path=/'],
    };
    if (req.url.startsWith('/forge/big')) {
      res.writeHead(200, { ...forged, 'Content-Type': 'application/octet-stream' });
      const chunk = Buffer.alloc(64 * 1024, 'a');
      for (let i = 0; i < 16; i++) res.write(chunk);
      return res.end();
    }
    const code = req.url.startsWith('/forge/401') ? 401 : 503;
    const error = code === 401 ? 'session_revoked' : 'store_unavailable';
    const body = JSON.stringify({ error, message: 'forged by the origin' });
    res.writeHead(code, { ...forged, 'X-WX-Edge-Error': error, 'Content-Type': 'application/json' });
    res.end(body);
  });
  return serve(server, { port: 0, host: '127.0.0.1' });
}

test("the origin cannot forge the worker's error marker: X-WX-Edge-Error and every x-wx-* header are removed from its answer", async () => {
  const origin = await startForgingOrigin();
  const s = await startStack({ origin });
  try {
    const t = await login(s, 'forger.1');
    for (const [code, error] of [
      [503, 'store_unavailable'],
      [401, 'session_revoked'],
    ]) {
      const res = await fetch(`${s.url}/forge/${code}`, { headers: bearer(t.access_token) });
      const r = { ...(await readResponse(res)), cookies: res.headers.getSetCookie() };
      // The origin's status, body and other headers, unchanged.
      assert.equal(r.status, code, r.text);
      assert.equal(r.json.error, error);
      assert.equal(r.json.message, 'forged by the origin');
      assert.equal(r.headers.get('retry-after'), '1');
      assert.equal(r.headers.get('x-origin-test'), 'yes');
      assert.equal(r.headers.get('content-type'), 'application/json');
      assert.deepEqual(r.cookies, ['a=1; Path=/', 'b=2; Path=/']);
      // Not the worker's marker, nor any x-wx-* header.
      for (const name of r.headers.keys()) {
        assert.ok(!norm(name).startsWith('x-wx-'), `${name} came back from the origin`);
      }
      assert.equal(r.headers.get('x-wx-edge-error'), null);
    }
    const big = await fetch(`${s.url}/forge/big`, { headers: bearer(t.access_token) });
    assert.equal(big.status, 200);
    assert.equal(big.headers.get('x-wx-openid'), null);
    assert.equal(big.headers.get('x-wx-edge-error'), null);
    const body = Buffer.from(await big.arrayBuffer());
    assert.equal(body.length, 16 * 64 * 1024);
    assert.ok(
      body.every((b) => b === 0x61),
      'the body streamed back whole',
    );
    // The worker's own answers keep their marker.
    const own = await call(s, 'GET', '/forge/503');
    assertError(own, 401, 'unauthorized');
    assert.equal(own.headers.get('x-wx-edge-error'), 'unauthorized');
  } finally {
    await s.close();
    await origin.close();
  }
});

test('origin redirect → 302 with Location, not followed', async () => {
  const t = await login(stack, 'redir.1');
  const before = stack.origin.requests.length;
  const r = await call(stack, 'GET', '/api/redirect', { headers: bearer(t.access_token) });
  assert.equal(r.status, 302, r.text);
  assert.equal(r.headers.get('location'), '/elsewhere');
  assert.equal(stack.origin.requests.length, before + 1, 'the worker did not follow it');
  assert.equal(stack.origin.requests.at(-1).path, '/api/redirect');
});

test('origin Set-Cookie: both cookies come back as separate headers', async () => {
  const t = await login(stack, 'cookie.1');
  const res = await fetch(stack.url + '/api/set-cookie', { headers: bearer(t.access_token) });
  assert.equal(res.status, 200);
  assert.deepEqual(res.headers.getSetCookie(), ['a=1; Path=/', 'b=2; Path=/']);
  await res.arrayBuffer();
});

test('a 5 MB origin body is streamed back fully', async () => {
  const t = await login(stack, 'big.1');
  const res = await fetch(stack.url + '/api/big?bytes=5000000', { headers: bearer(t.access_token) });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'application/octet-stream');
  const body = Buffer.from(await res.arrayBuffer());
  assert.equal(body.length, 5000000);
  assert.equal(body.indexOf(Buffer.from([0x61 ^ 0xff])), -1);
  assert.ok(
    body.every((b) => b === 0x61),
    'every byte is "a"',
  );
});

test('origin down → 502 origin_unavailable', async () => {
  const s = await startStack({ vars: { ORIGIN_URL: 'http://127.0.0.1:1' } });
  try {
    const t = await login(s, 'down.1');
    const r = await call(s, 'GET', '/api/orders', { headers: bearer(t.access_token) });
    assertError(r, 502, 'origin_unavailable');
    const p = await call(s, 'POST', '/api/orders', { body: { a: 1 }, headers: bearer(t.access_token) });
    assertError(p, 502, 'origin_unavailable');
    // Still no token → 401 before any origin attempt.
    assertError(await call(s, 'GET', '/api/orders'), 401, 'unauthorized');
  } finally {
    await s.close();
  }
});

// ------------------------------------------------------------ PUBLIC_PATHS

test("PUBLIC_PATHS='/public,/health': no token passes stripped; a valid token adds identity; an invalid one adds none; other paths still need a token", async () => {
  const s = await startStack({ vars: { PUBLIC_PATHS: '/public,/health' } });
  try {
    for (const p of ['/health', '/public', '/public/news?id=3']) {
      const r = await send(s, 'GET', p, SPOOFS);
      assert.equal(r.status, 200, `${p}: ${r.text}`);
      assertNoSpoofs(r.json);
      assert.deepEqual(identityHeaders(r.json), [], `${p}: no identity header added without a token`);
    }

    const t = await login(s, 'pub.1');
    const withToken = await send(s, 'GET', '/public/news', [...SPOOFS, ['authorization', `Bearer ${t.access_token}`]]);
    assert.equal(withToken.status, 200, withToken.text);
    assertNoSpoofs(withToken.json);
    assert.deepEqual(
      raw(withToken.json, 'x-wx-openid').map(([, v]) => v),
      [t.openid],
    );
    assert.deepEqual(
      raw(withToken.json, 'x-wx-appid').map(([, v]) => v),
      [s.appid],
    );
    assert.deepEqual(
      raw(withToken.json, 'x-wx-unionid').map(([, v]) => v),
      [t.unionid],
    );
    assert.equal(raw(withToken.json, 'x-wx-identity').length, 1);
    assert.ok((await verifyIdentity(s, raw(withToken.json, 'x-wx-identity')[0][1])).ok);
    assert.deepEqual(raw(withToken.json, 'authorization'), []);

    for (const bad of ['Bearer garbage', `Bearer ${t.access_token}x`, 'Basic dXNlcjpwYXNz']) {
      const r = await send(s, 'GET', '/health', [...SPOOFS, ['authorization', bad]]);
      assert.equal(r.status, 200, `${bad}: ${r.text}`);
      assertNoSpoofs(r.json);
      assert.deepEqual(identityHeaders(r.json), [], `${bad}: no identity header added`);
      assert.deepEqual(raw(r.json, 'authorization'), [], 'Authorization is not forwarded');
    }

    assertError(await call(s, 'GET', '/api/orders'), 401, 'unauthorized');
    assertError(await call(s, 'GET', '/api/orders', { headers: bearer('garbage') }), 401, 'invalid_token');
    const ok = await call(s, 'GET', '/api/orders', { headers: bearer(t.access_token) });
    assert.equal(ok.status, 200, ok.text);
    // /auth/* stays the worker's own.
    assertError(await call(s, 'GET', '/auth/session'), 401, 'unauthorized');
  } finally {
    await s.close();
  }
});

// ----------------------------------------------------------- SESSION_CHECK

test("SESSION_CHECK='refresh-only': after logout the access token still passes the proxy (stateless), refresh fails", async () => {
  const s = await startStack({ vars: { SESSION_CHECK: 'refresh-only' } });
  try {
    const t = await login(s, 'stateless.1');
    const out = await call(s, 'POST', '/auth/logout', { headers: bearer(t.access_token) });
    assert.equal(out.status, 204, out.text);
    const r = await call(s, 'GET', '/api/orders', { headers: bearer(t.access_token) });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.headers['x-wx-openid'], t.openid);
    assert.equal(r.json.headers['x-wx-unionid'], t.unionid);
    assertError(
      await call(s, 'POST', '/auth/refresh', { body: { refresh_token: t.refresh_token } }),
      401,
      'invalid_refresh_token',
    );
    // Tokens are still verified: a bad one is refused without KV.
    assertError(await call(s, 'GET', '/api/orders', { headers: bearer('garbage') }), 401, 'invalid_token');
  } finally {
    await s.close();
  }
});

test('SESSION_CHECK default (every-request): after logout the access token gets 401 session_revoked at once', async () => {
  const t = await login(stack, 'stateful.1');
  const ok = await call(stack, 'GET', '/api/orders', { headers: bearer(t.access_token) });
  assert.equal(ok.status, 200, ok.text);
  const before = stack.origin.requests.length;
  assert.equal((await call(stack, 'POST', '/auth/logout', { headers: bearer(t.access_token) })).status, 204);
  assertError(await call(stack, 'GET', '/api/orders', { headers: bearer(t.access_token) }), 401, 'session_revoked');
  assert.equal(stack.origin.requests.length, before, 'the revoked request did not reach the origin');
});

test('logs: no session_key, AppSecret, TOKEN_SECRET or IDENTITY_KEY after all the proxying above', async () => {
  await new Promise((r) => setTimeout(r, 200));
  const logs = stack.logs();
  for (const user of ['getter', 'poster', 'hdr', 'nounionp', 'ident', 'resp', 'redir', 'cookie', 'big', 'stateful']) {
    const sk = stack.sim.sessionKeyOf(user);
    assert.ok(sk, user);
    assert.ok(!logs.includes(sk), `${user}'s session_key is in the logs`);
  }
  for (const v of [stack.appsecret, stack.tokenSecret, stack.identityKey])
    assert.ok(!logs.includes(v), 'a secret is in the logs');
});
