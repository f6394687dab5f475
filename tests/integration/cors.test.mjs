// CORS_ORIGINS in the real worker: preflights answered by the worker for
// listed origins only (never sent to the origin), Access-Control-Allow-Origin
// / Vary / Expose-Headers on the worker's own and proxied answers, the
// origin's own CORS headers replaced, nothing at all with CORS_ORIGINS empty.
// (A real browser's verdict on these headers: tests/browser/.)
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { startStack, call, login, bearer } from '../support/stack.mjs';
import { serve } from '../support/serve.mjs';

const H5 = 'https://h5.example.com';
const LOCAL = 'http://127.0.0.1:5173';

/**
 * An origin that speaks CORS itself (`*`, credentials) and sets Vary: what
 * the worker must replace, not add to. Records every request it receives.
 */
async function startCorsyOrigin() {
  const requests = [];
  const server = createServer((req, res) => {
    requests.push({ method: req.method, url: req.url, headers: req.headers });
    res.setHeader('Access-Control-Allow-Origin', '*');
    res.setHeader('Access-Control-Allow-Credentials', 'true');
    res.setHeader('Access-Control-Expose-Headers', 'X-Secret');
    res.setHeader('Vary', 'Accept-Encoding');
    res.setHeader('X-Origin-Test', 'yes');
    if (req.url.endsWith('/no-content')) {
      res.writeHead(204);
      res.end();
      return;
    }
    res.setHeader('Content-Type', 'application/json');
    res.writeHead(req.url.endsWith('/teapot') ? 418 : 200);
    res.end(JSON.stringify({ method: req.method, url: req.url }));
  });
  return { ...(await serve(server, { port: 0, host: '127.0.0.1' })), requests };
}

/** The CORS headers of an answer, lower-cased names. */
function corsOf(headers) {
  return Object.fromEntries([...headers].filter(([k]) => k.startsWith('access-control-')));
}

function preflight(stack, path, origin, method = 'POST', requestHeaders = 'authorization, content-type') {
  const headers = { 'access-control-request-method': method, 'access-control-request-headers': requestHeaders };
  if (origin !== undefined) headers.origin = origin;
  return call(stack, 'OPTIONS', path, { headers });
}

describe('CORS_ORIGINS empty: exactly as before', () => {
  let stack, origin;
  before(async () => {
    origin = await startCorsyOrigin();
    stack = await startStack({ origin, vars: { PUBLIC_PATHS: '/public' } });
  });
  after(async () => {
    await stack?.close();
    await origin?.close();
  });

  test('a preflight is routed as any OPTIONS: 405 on /auth/login, 401 on a proxied path, the origin answers a public one', async () => {
    const login405 = await preflight(stack, '/auth/login', H5);
    assert.equal(login405.status, 405);
    assert.equal(login405.headers.get('allow'), 'POST');
    const api401 = await preflight(stack, '/api/x', H5);
    assert.equal(api401.status, 401);
    assert.equal(api401.json.error, 'unauthorized');
    for (const r of [login405, api401]) {
      assert.deepEqual(corsOf(r.headers), {});
      assert.equal(r.headers.get('vary'), null);
    }
    const before = origin.requests.length;
    const pub = await preflight(stack, '/public/x', H5);
    assert.equal(pub.status, 200);
    assert.equal(origin.requests.length, before + 1);
    assert.equal(origin.requests.at(-1).method, 'OPTIONS');
    // The origin's own CORS headers pass unchanged, as they always did.
    assert.equal(pub.headers.get('access-control-allow-origin'), '*');
    assert.equal(pub.headers.get('vary'), 'Accept-Encoding');
  });

  test('own and proxied answers get no CORS header', async () => {
    const t = await login(stack, 'cors-off.1');
    const own = await call(stack, 'GET', '/auth/session', { headers: { ...bearer(t.access_token), origin: H5 } });
    assert.equal(own.status, 200);
    assert.deepEqual(corsOf(own.headers), {});
    assert.equal(own.headers.get('vary'), null);
    const proxied = await call(stack, 'GET', '/api/x', { headers: { ...bearer(t.access_token), origin: H5 } });
    assert.equal(proxied.status, 200);
    assert.equal(proxied.headers.get('access-control-allow-credentials'), 'true');
  });
});

describe('CORS_ORIGINS set', () => {
  let stack, origin;
  before(async () => {
    origin = await startCorsyOrigin();
    stack = await startStack({
      origin,
      vars: { CORS_ORIGINS: ` ${H5.toUpperCase()}:443 , ${LOCAL}`, PUBLIC_PATHS: '/public' },
    });
  });
  after(async () => {
    await stack?.close();
    await origin?.close();
  });

  test("a listed origin's preflight: 204 from the worker with methods, headers, max-age; never sent to the origin", async () => {
    const before = origin.requests.length;
    for (const [path, o] of [
      ['/auth/login', H5],
      ['/auth/refresh', H5],
      ['/auth/logout', LOCAL],
      ['/auth/session', H5],
      ['/auth/phone', H5],
      ['/api/orders/1', H5],
      ['/public/x', LOCAL],
      ['/', H5],
    ]) {
      const r = await preflight(stack, path, o, 'PUT');
      assert.equal(r.status, 204, `${path}: ${r.text}`);
      assert.equal(r.text, '');
      assert.deepEqual(
        corsOf(r.headers),
        {
          'access-control-allow-origin': o,
          'access-control-allow-methods': 'GET, HEAD, POST, PUT, PATCH, DELETE',
          'access-control-allow-headers': 'Authorization, Content-Type',
          'access-control-max-age': '600',
        },
        path,
      );
      assert.equal(r.headers.get('vary'), 'Origin');
      assert.equal(r.headers.get('x-wx-edge-error'), null);
    }
    assert.equal(origin.requests.length, before, 'no preflight reached the origin');
  });

  test('any other origin: the worker answers its preflight with no CORS header, so the browser refuses', async () => {
    const before = origin.requests.length;
    for (const o of [
      'null',
      'https://evil.com',
      'https://evil.com.h5.example.com',
      'https://h5.example.com.evil.com',
      'https://evilh5.example.com',
      'HTTPS://H5.EXAMPLE.COM',
      'https://h5.example.com/',
      'https://h5.example.com:443',
      'http://h5.example.com',
      `${H5}, https://evil.com`,
      'http://127.0.0.1:5174',
      'http://localhost:5173',
      '*',
    ]) {
      for (const path of ['/auth/login', '/api/x', '/public/x']) {
        const r = await preflight(stack, path, o);
        assert.equal(r.status, 204, `${o} ${path}`);
        assert.deepEqual(corsOf(r.headers), {}, `${o} ${path}`);
        assert.equal(r.headers.get('vary'), 'Origin');
      }
    }
    assert.equal(origin.requests.length, before, 'no preflight reached the origin');
  });

  test('an Origin with anything after a listed one is not echoed', async () => {
    // CR/LF cannot travel in a header value (the host tests try them); what
    // can is compared exactly, and only the configured value is ever sent.
    for (const o of [`${H5}\tx`, `${H5}/x`, `${H5}?`, `${H5}#`]) {
      const r = await preflight(stack, '/api/x', o);
      assert.deepEqual(corsOf(r.headers), {}, JSON.stringify(o));
    }
  });

  test('operator endpoints and the JWKS are not for browsers: no preflight, no CORS header', async () => {
    const admin = await preflight(stack, '/auth/admin/users/o1', H5, 'GET');
    assert.equal(admin.status, 404);
    assert.equal(admin.headers.get('access-control-allow-methods'), null);
    const jwks = await preflight(stack, '/.well-known/jwks.json', H5, 'GET');
    assert.equal(jwks.status, 405);
    assert.equal(jwks.headers.get('access-control-allow-methods'), null);
  });

  test('a plain OPTIONS (no Access-Control-Request-Method) is routed as before', async () => {
    const r = await call(stack, 'OPTIONS', '/api/x', { headers: { origin: H5 } });
    assert.equal(r.status, 401);
    assert.equal(r.json.error, 'unauthorized');
    const t = await login(stack, 'cors-options.1');
    const before = origin.requests.length;
    const passed = await call(stack, 'OPTIONS', '/api/x', { headers: { ...bearer(t.access_token), origin: H5 } });
    assert.equal(passed.status, 200);
    assert.equal(origin.requests.length, before + 1);
  });

  test("the worker's own answers, success and error, name the listed origin and expose its error marker", async () => {
    const ok = await call(stack, 'POST', '/auth/login', { body: { code: 'cors-own.1' }, headers: { origin: H5 } });
    assert.equal(ok.status, 200);
    const unauth = await call(stack, 'GET', '/api/x', { headers: { origin: H5 } });
    assert.equal(unauth.status, 401);
    assert.equal(unauth.headers.get('x-wx-edge-error'), 'unauthorized');
    const logout = await call(stack, 'POST', '/auth/logout', {
      headers: { ...bearer(ok.json.access_token), origin: LOCAL },
    });
    assert.equal(logout.status, 204);
    for (const [r, o] of [
      [ok, H5],
      [unauth, H5],
      [logout, LOCAL],
    ]) {
      assert.deepEqual(corsOf(r.headers), {
        'access-control-allow-origin': o,
        'access-control-expose-headers': 'X-WX-Edge-Error, Retry-After',
      });
      assert.equal(r.headers.get('vary'), 'Origin');
    }
    // Never credentials, never *.
    assert.equal(ok.headers.get('access-control-allow-credentials'), null);
  });

  test('another origin, or none, gets no CORS header on the same answers (only Vary)', async () => {
    for (const o of [undefined, 'null', 'https://evil.com', 'https://h5.example.com/']) {
      const headers = o === undefined ? {} : { origin: o };
      const r = await call(stack, 'POST', '/auth/login', { body: { code: `cors-other.${Math.random()}` }, headers });
      assert.equal(r.status, 200);
      assert.deepEqual(corsOf(r.headers), {}, String(o));
      assert.equal(r.headers.get('vary'), 'Origin');
    }
  });

  test("proxied answers: the origin's CORS headers replaced, not added to; status, body and other headers kept", async () => {
    const t = await login(stack, 'cors-proxy.1');
    for (const [path, status] of [
      ['/api/x', 200],
      ['/api/teapot', 418],
      ['/api/no-content', 204],
      ['/public/y', 200],
    ]) {
      const r = await call(stack, 'GET', path, { headers: { ...bearer(t.access_token), origin: H5 } });
      assert.equal(r.status, status, path);
      assert.deepEqual(
        corsOf(r.headers),
        {
          'access-control-allow-origin': H5,
          'access-control-expose-headers': 'X-WX-Edge-Error, Retry-After',
        },
        path,
      );
      assert.equal(r.headers.get('vary'), 'Accept-Encoding, Origin', path);
      assert.equal(r.headers.get('x-origin-test'), 'yes');
      if (status !== 204) assert.equal(r.json.url.endsWith(path), true, r.text);
      else assert.equal(r.text, '');
    }
    // Another origin: the origin's `*` and credentials are gone too.
    const evil = await call(stack, 'GET', '/api/x', {
      headers: { ...bearer(t.access_token), origin: 'https://evil.com' },
    });
    assert.equal(evil.status, 200);
    assert.deepEqual(corsOf(evil.headers), {});
    assert.equal(evil.headers.get('vary'), 'Accept-Encoding, Origin');
  });
});

describe('CORS_ORIGINS misconfigured', () => {
  for (const bad of [
    '*',
    'https://marker.example.com/',
    'http://marker.example.com',
    'null',
    'https://*.marker.example.com',
  ]) {
    test(`${JSON.stringify(bad)}: every request is 500 server_misconfigured naming the variable, never its value`, async () => {
      const stack = await startStack({ vars: { CORS_ORIGINS: bad } });
      try {
        for (const r of [
          await preflight(stack, '/auth/login', 'https://h5.example.com'),
          await call(stack, 'GET', '/api/x', { headers: { origin: 'https://h5.example.com' } }),
        ]) {
          assert.equal(r.status, 500);
          assert.equal(r.json.error, 'server_misconfigured');
          assert.match(r.json.message, /CORS_ORIGINS/);
          assert.ok(!r.json.message.includes('marker'), r.json.message);
          assert.deepEqual(corsOf(r.headers), {});
        }
        assert.match(stack.logs(), /CORS_ORIGINS/);
        assert.ok(!stack.logs().includes('marker'));
      } finally {
        await stack.close();
      }
    });
  }
});
