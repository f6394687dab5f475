// The origin helpers in origin/ behind the real worker (workerd via
// Miniflare): a request through the worker reaches the handler with the
// verified identity; the same request sent straight to the origin, with
// forged X-WX-* headers and no, a forged or another origin's assertion, is
// refused. Node (Express-style middleware on node:http) and Python (the
// Django middleware in origin/python/example_django_origin.py).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { createHmac, generateKeyPairSync, sign } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startStack, login, bearer, readResponse } from '../support/stack.mjs';
import { serve } from '../support/serve.mjs';
import { wxIdentityExpress } from '../../origin/node/lib/middleware.mjs';
import { httpJwksFetcher } from '../../origin/node/lib/wx-identity.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

// ------------------------------------------------------------- the origins

/** A Node origin: the Express-style middleware on plain node:http. */
async function startNodeOrigin(jwksUrl) {
  let mw;
  const server = createServer((req, res) =>
    mw(req, res, () => {
      const i = req.wxIdentity;
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          origin: 'node',
          openid: i.openid,
          unionid: i.unionid,
          appid: i.appid,
          phone: i.phone,
          path: req.url,
          assertion: req.headers['x-wx-identity'], // for the replay test below
        }),
      );
    }),
  );
  const origin = await serve(server, { port: 0, host: '127.0.0.1' });
  // The audience is this origin; the worker's URL is known only once the
  // stack runs, so the JWKS URL is resolved at each fetch.
  mw = wxIdentityExpress({ audience: origin.url, fetchJwks: () => httpJwksFetcher(jwksUrl())() });
  return origin;
}

function pythonWithDjango() {
  for (const py of [path.join(root, 'origin/python/.venv/bin/python'), 'python3']) {
    if (py.includes('/') && !existsSync(py)) continue;
    if (spawnSync(py, ['-c', 'import jwt, cryptography, django'], { stdio: 'ignore' }).status === 0) return py;
  }
  return null;
}
const PYTHON = pythonWithDjango();

/** A free local port (for the worker, whose URL the Python origin needs up front). */
async function freePort() {
  const s = createNetServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

/** The Django example origin in a child process; resolves once it prints its URL. */
async function startDjangoOrigin(jwksUrl) {
  const child = spawn(PYTHON, [path.join(root, 'origin/python/example_django_origin.py'), '--jwks-url', jwksUrl], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (d) => {
    err += d;
  });
  const url = await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const line = out.split('\n')[0];
      if (out.includes('\n')) resolve(line.trim());
    });
    child.once('exit', (code) => reject(new Error(`the Django origin exited (${code}): ${err}`)));
  });
  return {
    url,
    close: () =>
      new Promise((r) => {
        if (child.exitCode !== null) return r();
        child.once('exit', r);
        child.kill();
      }),
  };
}

// ------------------------------------------------------------ the stacks

const stacks = {};
let elsewhere;
before(async () => {
  elsewhere = await assertionForAnotherOrigin('mallory.1');
  assert.ok(elsewhere, 'no assertion captured');
  let nodeStack;
  const nodeOrigin = await startNodeOrigin(() => `${nodeStack.url}/.well-known/jwks.json`);
  nodeStack = await startStack({ origin: nodeOrigin });
  stacks.node = { stack: nodeStack, origin: nodeOrigin };
  if (PYTHON) {
    const port = await freePort();
    const djangoOrigin = await startDjangoOrigin(`http://127.0.0.1:${port}/.well-known/jwks.json`);
    const s = await startStack({ origin: djangoOrigin, miniflare: { host: '127.0.0.1', port } });
    stacks.django = { stack: s, origin: djangoOrigin };
  }
});
after(async () => {
  for (const { stack, origin } of Object.values(stacks)) {
    await stack.close();
    await origin.close();
  }
});

// ------------------------------------------------------------ helpers

async function get(url, headers = {}) {
  return readResponse(await fetch(url, { headers, redirect: 'manual' }));
}

const FORGED = {
  'X-WX-OpenID': 'oFORGED-victim',
  'X-WX-UnionID': 'uFORGED',
  'X-WX-AppID': 'wxFORGED',
  'X-WX-Phone': '13900000000',
};
const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');

/** Assertions an attacker can make without the worker's key. */
function forgeries(realToken, otherAudience) {
  const [h, p] = realToken.split('.');
  const header = JSON.parse(Buffer.from(h, 'base64url'));
  const claims = { ...JSON.parse(Buffer.from(p, 'base64url')), sub: 'oFORGED-victim' };
  const attacker = generateKeyPairSync('ed25519');
  const hs = `${b64({ ...header, alg: 'HS256' })}.${b64(claims)}`;
  const ed = `${b64(header)}.${b64(claims)}`;
  return {
    'alg none': `${b64({ ...header, alg: 'none' })}.${b64(claims)}.`,
    'HS256 keyed with a guess': `${hs}.${createHmac('sha256', 'secret').update(hs).digest('base64url')}`,
    "an attacker's Ed25519 key under the worker's kid": `${ed}.${sign(null, Buffer.from(ed), attacker.privateKey).toString('base64url')}`,
    'a real assertion with its payload swapped': `${h}.${b64(claims)}.${realToken.split('.')[2]}`,
    ...(otherAudience ? { "another origin's real assertion": otherAudience } : {}),
  };
}

/**
 * A real assertion from a worker with the same IDENTITY_KEY but another
 * ORIGIN_URL (so another aud), captured by an origin that only records.
 */
async function assertionForAnotherOrigin(user) {
  const captured = [];
  const srv = createServer((req, res) => {
    captured.push(req.headers['x-wx-identity']);
    res.end('{}');
  });
  const tap = await serve(srv, { port: 0, host: '127.0.0.1' });
  const t = await startStack({ origin: tap });
  try {
    const pair = await login(t, user);
    await get(`${t.url}/api/x`, bearer(pair.access_token));
  } finally {
    await t.close();
    await tap.close();
  }
  return captured[0];
}

for (const kind of ['node', 'django']) {
  const skip =
    kind === 'django' && !PYTHON
      ? 'no Python with PyJWT, cryptography and Django (scripts/bootstrap makes origin/python/.venv)'
      : false;

  test(`${kind}: a request through the worker reaches the handler with the verified identity`, { skip }, async () => {
    const { stack } = stacks[kind];
    const pair = await login(stack, `alice-${kind}.1`);
    // Forged headers sent through the worker are stripped and replaced.
    const r = await get(`${stack.url}/api/whoami?x=1`, {
      ...bearer(pair.access_token),
      ...FORGED,
      'X-WX-Identity': 'forged.by.client',
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.origin, kind);
    assert.equal(r.json.openid, pair.openid);
    assert.equal(r.json.unionid, pair.unionid);
    assert.equal(r.json.appid, stack.appid);
    assert.equal(r.json.phone, null);
    assert.match(r.json.path, /^\/api\/whoami/);
  });

  test(`${kind}: straight to the origin with forged X-WX-* headers and no assertion: 401`, { skip }, async () => {
    const { origin } = stacks[kind];
    const r = await get(`${origin.url}/api/whoami`, FORGED);
    assert.equal(r.status, 401, r.text);
    assert.equal(r.json.error, 'missing_identity');
    assert.ok(!r.text.includes('oFORGED'), r.text);
  });

  test(`${kind}: straight to the origin with a forged or misdirected assertion: 401`, { skip }, async () => {
    const { origin } = stacks[kind];
    // The real one for another origin is misdirected as it is, and the
    // template for the forgeries.
    for (const [name, token] of Object.entries(forgeries(elsewhere, elsewhere))) {
      const r = await get(`${origin.url}/api/whoami`, { ...FORGED, 'X-WX-Identity': token });
      assert.equal(r.status, 401, `${name}: ${r.text}`);
      assert.equal(r.json.error, 'invalid_identity', name);
    }
  });
}

test('node: a real assertion for this origin, replayed straight to it, passes until it expires (keep the origin private)', async () => {
  const { stack, origin } = stacks.node;
  const pair = await login(stack, 'eve.1');
  const through = await get(`${stack.url}/api/whoami`, bearer(pair.access_token));
  assert.equal(through.status, 200, through.text);
  // The assertion is a bearer credential for its (2-minute) life: the
  // verifier cannot tell a replay from the worker. What it does stop is
  // changing it, or using it at another origin (the tests above).
  const replay = await get(`${origin.url}/api/whoami`, { 'X-WX-Identity': through.json.assertion });
  assert.equal(replay.status, 200, replay.text);
  assert.equal(replay.json.openid, pair.openid);
});
