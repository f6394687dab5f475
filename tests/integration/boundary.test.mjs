// Hostile input at the boundary, against the real worker in workerd:
// public-path escapes, spoofed forwarding headers, the staff gate on public
// paths, the worker's own rate limits, and the decryption lockout.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import http from 'node:http';
import { startStack, call, login, bearer, freshLimitWindow } from '../support/stack.mjs';
import { startEchoOrigin } from '../support/echo-origin.mjs';

function assertError(r, status, error) {
  assert.equal(r.status, status, `expected ${status} ${error}, got ${r.status} ${r.text}`);
  assert.equal(r.json?.error, error, r.text);
}

/**
 * A GET with the path exactly as given: fetch() would resolve dot segments
 * before sending, as a browser does; an attacker's client does not.
 */
function rawGet(stack, path, headers = {}) {
  return rawRequest(stack, 'GET', path, headers);
}

/**
 * Any method, spelled as given, with an optional text body. A connection of
 * its own each time: workerd may close one after an answer that left the
 * request's body unread, and a reused socket would then fail the next test.
 */
function rawRequest(stack, method, path, headers = {}, body = undefined) {
  const { hostname, port } = new URL(stack.url);
  if (body !== undefined) headers = { ...headers, 'content-length': Buffer.byteLength(body) };
  return new Promise((resolve, reject) => {
    const req = http.request({ hostname, port, path, method, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        let json;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error(`timeout for ${method} ${path}`)));
    req.end(body);
  });
}

/** Every way we know to step out of /public/ on a Java/Node/Go origin. */
const ESCAPES = [
  '/public/../admin',
  '/public/..;/admin',
  '/public/%2e%2e;/admin',
  '/public/%2E%2E/admin',
  '/public/..%3b/admin',
  '/public/..%3B/admin',
  '/public/.%2e/admin',
  '/public/%2e./admin',
  '/public/..%2fadmin',
  '/public/..%2Fadmin',
  '/public/..%5cadmin',
  '/public/..%5Cadmin',
  '/public/%252e%252e/admin',
  '/public/;/admin',
  '/public/x;jsessionid=1/../../admin',
  '/public//admin',
  '/public/%/admin',
];

describe('PUBLIC_PATHS=/public/', () => {
  let s;
  before(async () => {
    s = await startStack({ vars: { PUBLIC_PATHS: '/public/' } });
  });
  after(async () => {
    await s?.close();
  });

  test('a canonical public path passes without a token', async () => {
    const r = await call(s, 'GET', '/public/a/b.txt?x=1');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.path, '/public/a/b.txt');
  });

  test('every escape from the public prefix needs a token and reaches nothing without one', async () => {
    for (const p of ESCAPES) {
      const before = s.origin.requests.length;
      const r = await rawGet(s, p);
      assert.equal(r.status, 401, `${p}: ${r.status} ${r.text}`);
      assert.equal(r.json?.error, 'unauthorized', `${p}: ${r.text}`);
      assert.equal(s.origin.requests.length, before, `${p} reached the origin without a token`);
    }
  });

  test('a dot segment the runtime resolves itself is judged as resolved, and forwarded as judged', async () => {
    // workerd hands the worker `/public/admin` for `/public/./admin` (and
    // `/admin` for `/public/../admin`): what is classified is what the
    // origin receives.
    const r = await rawGet(s, '/public/./admin');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.url, '/public/admin');
    // The proxied fetch is `cache: no-store`: workerd marks it so for any
    // cache on the way (this client sent no cache headers).
    assert.equal(r.json.headers['cache-control'], 'no-cache');
    assert.equal(r.json.headers.pragma, 'no-cache');
    assertError(await rawGet(s, '/public/../admin'), 401, 'unauthorized');
  });

  test('with a valid token the same paths are forwarded as sent, with identity', async () => {
    const u = await login(s, 'escaper.1');
    for (const p of ['/public/..;/admin', '/public/%2e%2e;/admin', '/public/..%3b/admin', '/public/../admin']) {
      const r = await rawGet(s, p, bearer(u.access_token));
      assert.equal(r.status, 200, `${p}: ${r.text}`);
      assert.equal(r.json.headers['x-wx-openid'], u.openid, p);
      // Forwarded as the runtime handed it over: the origin resolves it,
      // with identity attached, so its own authorisation applies.
      assert.ok(r.json.url.startsWith('/'), r.json.url);
    }
  });

  test('spoofed forwarding headers never reach the origin; the worker sets its own', async () => {
    const u = await login(s, 'spoofer.1');
    const spoofed = {
      'X-Forwarded-For': '10.0.0.1',
      'X-Forwarded-Host': 'admin.internal',
      'X-Forwarded-Proto': 'https',
      'X-Forwarded-Prefix': '/admin',
      Forwarded: 'for=10.0.0.3;proto=https;host=admin.internal',
      'X-Real-IP': '10.0.0.4',
      'True-Client-IP': '10.0.0.5',
      'X-Client-IP': '10.0.0.6',
      'X-Original-URL': '/admin',
      'X-Rewrite-URL': '/admin',
      X_Forwarded_For: '10.0.0.7',
      'X-WX-Client-IP': '10.0.0.8',
    };
    for (const headers of [spoofed, { ...spoofed, ...bearer(u.access_token) }]) {
      const path = headers.authorization ? '/api/me' : '/public/me';
      const r = await call(s, 'GET', path, { headers });
      assert.equal(r.status, 200, r.text);
      const seen = r.json.headers;
      for (const name of [
        'x-forwarded-host',
        'x-forwarded-prefix',
        'forwarded',
        'x-real-ip',
        'true-client-ip',
        'x-client-ip',
        'x-original-url',
        'x-rewrite-url',
        'x_forwarded_for',
      ]) {
        assert.equal(seen[name], undefined, `${name} reached the origin: ${seen[name]}`);
      }
      assert.ok(
        !JSON.stringify(seen).includes('10.0.0.'),
        `a spoofed address reached the origin: ${JSON.stringify(seen)}`,
      );
      assert.ok(!JSON.stringify(seen).includes('admin'), 'a spoofed host or path reached the origin');
      assert.equal(seen['x-forwarded-proto'], 'http', 'the scheme the client really used');
      assert.equal(seen['x-wx-client-ip'], seen['x-forwarded-for'], 'one client address, twice');
      if (seen['cf-connecting-ip']) assert.equal(seen['x-wx-client-ip'], seen['cf-connecting-ip']);
    }
  });

  test('every header of a stripped family, in any spelling, never reaches the origin', async () => {
    const u = await login(s, 'families.1');
    // Issue 18's list, then more of each family, then variants in case and
    // punctuation.
    const names = [
      'X-Original-Host',
      'X-Host',
      'X-HTTP-Method-Override',
      'X-Method-Override',
      'Client-IP',
      'X-Cluster-Client-IP',
      'X-Original-Forwarded-For',
      'X-ProxyUser-Ip',
      'Fastly-Client-IP',
      'Proxy-Connection',
      'X-HTTP-Method',
      'X-Original-URI',
      'X-Original-Method',
      'X-Rewrite-Path',
      'X-HTTP-Host-Override',
      'X-Forwarded-Server',
      'X-Forwarded',
      'Forwarded-For',
      'Fly-Client-IP',
      'X-Azure-ClientIP',
      'X-AppEngine-User-IP',
      'X-Remote-Addr',
      'X-Originating-IP',
      'X-Envoy-External-Address',
      'CF-IPCountry',
      'CF-Visitor',
      'Cf-Access-Jwt-Assertion',
      'CF-Worker',
      'x_original_host',
      'X.HOST',
      'x-CLUSTER_client-ip',
      'X-Http-Method-Override2',
      'proxy_authorization_x',
      'x-original-anything',
    ];
    const headers = Object.fromEntries(names.map((n, i) => [n, `spoof-${i}`]));
    for (const [path, extra] of [
      ['/public/families', {}],
      ['/api/families', bearer(u.access_token)],
    ]) {
      const r = await rawGet(s, path, { ...headers, ...extra });
      assert.equal(r.status, 200, `${path}: ${r.text}`);
      const seen = JSON.stringify(r.json.rawHeaders);
      assert.ok(!seen.includes('spoof-'), `a spoofed header reached the origin at ${path}: ${seen}`);
      assert.equal(r.json.method, 'GET', 'no method override honoured on the way');
    }
  });
});

describe('ORIGIN_URL with a base path (/api/): no path leaves it', () => {
  let s;
  let origin;
  before(async () => {
    origin = await startEchoOrigin();
    s = await startStack({ origin, vars: { ORIGIN_URL: `${origin.url}/api/` } });
  });
  after(async () => {
    await s?.close();
    await origin?.close();
  });

  /** The path an origin that decodes, reads `\\` and `;` loosely and merges `//` resolves to. */
  function resolved(path, decodes) {
    let p = path;
    for (let i = 0; i < decodes; i++) p = p.replace(/%([0-9a-f]{2})/gi, (_, h) => String.fromCharCode(parseInt(h, 16)));
    const out = [];
    for (const seg of p.replaceAll('\\', '/').split('/')) {
      const bare = seg.split(';')[0];
      if (bare === '' || bare === '.') continue;
      if (bare === '..') {
        if (out.length === 0) return '/..';
        out.pop();
      } else out.push(bare);
    }
    return '/' + out.join('/');
  }

  test('an authenticated path that could climb out is refused or forwarded inside /api/', async () => {
    const u = await login(s, 'climber.1');
    const auth = bearer(u.access_token);
    const refused = ['/..%2fadmin', '/..%2Fadmin', '/a/..%5c..%5cb', '/..;/x', '/%252e%252e/x', '/a/..%3b/..%3b/x'];
    for (const p of refused) {
      const before = s.origin.requests.length;
      const r = await rawGet(s, p, auth);
      assertError(r, 400, 'invalid_request');
      assert.equal(r.headers['x-wx-edge-error'], 'invalid_request');
      assert.equal(s.origin.requests.length, before, `${p} reached the origin`);
    }
    // The runtime resolves these itself: what reaches the origin stays
    // inside /api/ however the origin decodes it.
    for (const p of ['/%2e%2e/x', '/;/../x', '/a/b/..%2fc', '/x/./y']) {
      const r = await rawGet(s, p, auth);
      if (r.status === 400) {
        assert.equal(r.json?.error, 'invalid_request', r.text);
        continue;
      }
      assert.equal(r.status, 200, `${p}: ${r.text}`);
      for (const decodes of [0, 1, 2]) {
        const seen = resolved(r.json.path, decodes);
        assert.ok(seen === '/api' || seen.startsWith('/api/'), `${p} reached ${r.json.path} (${seen})`);
      }
    }
    // Without a token, still 400: the target is judged first.
    assertError(await rawGet(s, '/..%2fadmin'), 400, 'invalid_request');
    const ok = await rawGet(s, '/orders/1?x=../..', auth);
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.url, '/api/orders/1?x=../..');
  });
});

describe('methods as the client spells them', () => {
  let s;
  before(async () => {
    s = await startStack();
  });
  after(async () => {
    await s?.close();
  });

  test('a method the worker does not know reaches the origin as sent, with its body; a lower-case standard one arrives upper-cased', async () => {
    const u = await login(s, 'methods.1');
    const auth = bearer(u.access_token);
    // workers-rs once read any unknown method as GET and dropped the body.
    const dav = await rawRequest(s, 'PROPFIND', '/api/dav/x', { ...auth, 'content-type': 'text/xml' }, '<propfind/>');
    assert.equal(dav.status, 200, dav.text);
    assert.equal(dav.json.method, 'PROPFIND');
    assert.equal(dav.json.body, '<propfind/>');
    assert.equal(dav.json.headers['x-wx-openid'], u.openid);
    const lower = await rawRequest(s, 'patch', '/api/orders/1', { ...auth, 'content-type': 'text/plain' }, 'qty=3');
    assert.equal(lower.status, 200, lower.text);
    assert.equal(lower.json.method, 'PATCH');
    assert.equal(lower.json.body, 'qty=3');
    // Without a token an unknown method is refused like any other.
    assertError(await rawRequest(s, 'PROPFIND', '/api/dav/x'), 401, 'unauthorized');
  });

  test('TRACE, in any case, is answered 405 by the worker and never proxied', async () => {
    const u = await login(s, 'tracer.1');
    for (const method of ['TRACE', 'trace', 'Trace']) {
      for (const headers of [bearer(u.access_token), {}]) {
        const before = s.origin.requests.length;
        const r = await rawRequest(s, method, '/api/x', headers);
        assertError(r, 405, 'method_not_allowed');
        assert.equal(r.headers['x-wx-edge-error'], 'method_not_allowed');
        assert.ok(r.headers.allow && !/TRACE/i.test(r.headers.allow), r.headers.allow);
        assert.equal(s.origin.requests.length, before, `${method} reached the origin`);
        assert.ok(!r.text.includes('x-wx-identity'), 'no assertion echoed');
      }
    }
    // TRACK (IIS's TRACE) is refused by workerd before the worker sees it
    // (501); the worker would answer 405. Either way it reaches nothing.
    const before = s.origin.requests.length;
    const track = await rawRequest(s, 'TRACK', '/api/x', bearer(u.access_token));
    assert.ok([405, 501].includes(track.status), `${track.status} ${track.text}`);
    assert.equal(s.origin.requests.length, before, 'TRACK reached the origin');
  });

  test("the worker's own endpoints: a lower-case method is the standard one, any other method is 405", async () => {
    assertError(
      await rawRequest(s, 'post', '/auth/login', { 'content-type': 'application/json' }, '{}'),
      400,
      'invalid_request',
    );
    const dav = await rawRequest(s, 'PROPFIND', '/auth/login', { 'content-type': 'application/json' }, '{}');
    assertError(dav, 405, 'method_not_allowed');
    assert.equal(dav.headers.allow, 'POST');
    const get = await rawRequest(s, 'PROPFIND', '/auth/session');
    assertError(get, 405, 'method_not_allowed');
    assert.equal(get.headers.allow, 'GET, HEAD');
  });
});

describe('the staff gate on public paths', () => {
  let s;
  before(async () => {
    s = await startStack({ vars: { PUBLIC_PATHS: '/public/', REQUIRE_PHONE: 'true', PHONE_ALLOWLIST: 'true' } });
  });
  after(async () => {
    await s?.close();
  });

  test('a session without a phone, or whose phone left the list, passes public paths as anonymous', async () => {
    const u = await login(s, 'gated.1');
    const anon = await call(s, 'GET', '/public/x', { headers: bearer(u.access_token) });
    assert.equal(anon.status, 200, anon.text);
    for (const h of Object.keys(anon.json.headers)) {
      assert.ok(!h.startsWith('x-wx-') || h === 'x-wx-client-ip', `${h} sent for a session failing the gate`);
    }
    assertError(await call(s, 'GET', '/api/x', { headers: bearer(u.access_token) }), 403, 'phone_required');

    await s.kv.put('allow:phone:+8613800138077', '1');
    const b = await call(s, 'POST', '/auth/phone', {
      body: s.sim.encryptPhone({ user: 'gated', phone: '13800138077' }),
      headers: bearer(u.access_token),
    });
    assert.equal(b.status, 200, b.text);
    const staff = await call(s, 'GET', '/public/x', { headers: bearer(b.json.access_token) });
    assert.equal(staff.json.headers['x-wx-openid'], u.openid);
    assert.ok(staff.json.headers['x-wx-identity']);

    // Off the list: at once, before any refresh.
    await s.kv.delete('allow:phone:+8613800138077');
    const gone = await call(s, 'GET', '/public/x', { headers: bearer(b.json.access_token) });
    assert.equal(gone.status, 200, gone.text);
    assert.equal(gone.json.headers['x-wx-openid'], undefined);
    assert.equal(gone.json.headers['x-wx-identity'], undefined);
    assertError(await call(s, 'GET', '/api/x', { headers: bearer(b.json.access_token) }), 403, 'not_internal_user');
  });
});

describe('rate limits', () => {
  let s;
  before(async () => {
    s = await startStack({ limits: { LOGIN_LIMITER: 5, REFRESH_LIMITER: 4, PHONE_LIMITER: 2 } });
  });
  after(async () => {
    await s?.close();
  });

  test('a login burst past the limit gets 429 with Retry-After and leaves WeChat alone', async () => {
    await freshLimitWindow();
    const before = s.sim.stats().code2session;
    const results = [];
    for (let i = 0; i < 40; i++) {
      results.push(
        await call(s, 'POST', '/auth/login', {
          body: { code: `burst${i}.1` },
          headers: { 'CF-Connecting-IP': '198.51.100.77' },
        }),
      );
    }
    const ok = results.filter((r) => r.status === 200).length;
    assert.ok(ok <= 5, `${ok} logins passed a limit of 5`);
    const limited = results.filter((r) => r.status === 429);
    assert.ok(limited.length >= 35, `${limited.length} refused`);
    assertError(limited[0], 429, 'rate_limited');
    assert.equal(limited[0].headers.get('retry-after'), '60');
    assert.equal(limited[0].headers.get('x-wx-edge-error'), 'rate_limited');
    assert.ok(s.sim.stats().code2session - before <= 5, 'WeChat was called past the limit');
  });

  test('refresh is limited per address, phone binding per user', async () => {
    const u = await login(s, 'limited.1');
    await freshLimitWindow();
    let token = u.refresh_token;
    const statuses = [];
    for (let i = 0; i < 8; i++) {
      const r = await call(s, 'POST', '/auth/refresh', {
        body: { refresh_token: token },
        headers: { 'CF-Connecting-IP': '198.51.100.88' },
      });
      statuses.push(r.status);
      if (r.status === 200) token = r.json.refresh_token;
    }
    assert.ok(statuses.filter((x) => x === 200).length <= 4, statuses.join());
    assert.ok(statuses.includes(429), statuses.join());

    const p = [];
    for (let i = 0; i < 5; i++) {
      p.push(
        (
          await call(s, 'POST', '/auth/phone', {
            body: { code: 'invalid-phone-code' },
            headers: bearer(u.access_token),
          })
        ).status,
      );
    }
    assert.ok(p.filter((x) => x === 429).length >= 3, p.join());
  });
});

describe('legacy phone decryption', () => {
  let s;
  before(async () => {
    s = await startStack();
  });
  after(async () => {
    await s?.close();
  });

  /** encryptedData/iv for `plain` under `user`'s current session_key. */
  function seal(user, plain) {
    const key = Buffer.from(s.sim.sessionKeyOf(user), 'base64');
    const iv = randomBytes(16);
    const c = createCipheriv('aes-128-cbc', key, iv);
    const data = Buffer.concat([c.update(Buffer.from(plain)), c.final()]);
    return { encryptedData: data.toString('base64'), iv: iv.toString('base64') };
  }
  const bind = (t, body) => call(s, 'POST', '/auth/phone', { body, headers: bearer(t.access_token) });

  test('data that decrypts but is not a phone is invalid_request; another app is watermark_mismatch', async () => {
    const u = await login(s, 'honest.1');
    const userInfo = JSON.stringify({ openId: u.openid, nickName: 'x', watermark: { appid: s.appid, timestamp: 1 } });
    const r = await bind(u, seal('honest', userInfo));
    assertError(r, 400, 'invalid_request');
    assert.doesNotMatch(r.json.message, /log in again/);
    const foreign = JSON.stringify({
      phoneNumber: '13800138000',
      purePhoneNumber: '13800138000',
      countryCode: '86',
      watermark: { appid: 'wx0000000000000000', timestamp: 1 },
    });
    assertError(await bind(u, seal('honest', foreign)), 400, 'watermark_mismatch');
    // Neither counts as a failed decryption: the session lives.
    assert.equal((await call(s, 'GET', '/auth/session', { headers: bearer(u.access_token) })).status, 200);
  });

  test('every failure to decrypt answers the same bytes, and the fifth revokes the session', async () => {
    const u = await login(s, 'grinder.1');
    const key = Buffer.from(s.sim.sessionKeyOf('grinder'), 'base64');
    const attempts = [
      { encryptedData: randomBytes(48).toString('base64'), iv: randomBytes(16).toString('base64') },
      // Valid padding, garbage plaintext.
      (() => {
        const iv = randomBytes(16);
        const c = createCipheriv('aes-128-cbc', key, iv);
        return {
          encryptedData: Buffer.concat([c.update(randomBytes(20)), c.final()]).toString('base64'),
          iv: iv.toString('base64'),
        };
      })(),
      // Under another key (a stale session_key).
      (() => {
        const iv = randomBytes(16);
        const c = createCipheriv('aes-128-cbc', randomBytes(16), iv);
        return {
          encryptedData: Buffer.concat([c.update('{"phoneNumber":"1"}'), c.final()]).toString('base64'),
          iv: iv.toString('base64'),
        };
      })(),
      { encryptedData: randomBytes(16).toString('base64'), iv: randomBytes(16).toString('base64') },
    ];
    const answers = [];
    for (const a of attempts) answers.push(await bind(u, a));
    for (const r of answers) assertError(r, 400, 'decrypt_failed');
    const shape = (r) =>
      JSON.stringify([
        r.status,
        r.text,
        r.headers.get('content-type'),
        r.headers.get('x-wx-edge-error'),
        r.headers.get('content-length'),
      ]);
    for (const r of answers) assert.equal(shape(r), shape(answers[0]), 'failures told apart');
    assert.equal(
      (await call(s, 'GET', '/auth/session', { headers: bearer(u.access_token) })).status,
      200,
      'four failures: still live',
    );
    const fifth = await bind(u, attempts[0]);
    assert.equal(shape(fifth), shape(answers[0]));
    assertError(await call(s, 'GET', '/auth/session', { headers: bearer(u.access_token) }), 401, 'session_revoked');
    assertError(
      await call(s, 'POST', '/auth/refresh', { body: { refresh_token: u.refresh_token } }),
      401,
      'invalid_refresh_token',
    );
  });
});
