// The self-host profile, end to end: the release build started on
// standalone workerd through the profile's own command (scripts/selfhost,
// which also runs scripts/build), with a temporary data directory, a free
// port and the settings and secrets in an env file, in front of the WeChat
// simulator and the echo origin. The test plays the reverse proxy: it sets
// X-Real-IP (the profile's CLIENT_IP_HEADER), and a client's forged
// CF-Connecting-IP must reach nothing.
//
// Then: login, session, proxy with the X-WX-Identity assertion verified
// against the JWKS, refresh, logout, a rate-limited burst (429), and a
// restart (SIGTERM, start again on the same port, same data) with sessions
// intact. What a restart does to requests, as observed here and documented
// in README "Deploying for mainland China": workerd stops serving new
// requests at once (a connection made while it drains is reset when it
// exits, one made after is refused: a connection error, which nginx turns
// into 503), and finishes the requests in flight before it exits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { startWechatSim } from '../support/wechat-sim.mjs';
import { startEchoOrigin } from '../support/echo-origin.mjs';
import { root, startProfile } from './profile.mjs';

const APPID = 'wxd930ea5d5a258f4f';
const APPSECRET = 'selfhost-appsecret-' + randomBytes(8).toString('hex');
const ADMIN_TOKEN = randomBytes(48).toString('base64');
/** The address the "reverse proxy" (this test) reports, and a client's forgery. */
const CLIENT = '198.51.100.7';
const FORGED = '203.0.113.66';
/** The profile's ADMIN_LIMITER (selfhost/wx-edge.capnp). */
const ADMIN_LIMIT = 30;

/** Runs scripts/selfhost-kv.mjs against the profile's data directory; resolves to its stdout. */
async function selfhostKv(data, ...args) {
  const script = path.join(root, 'scripts', 'selfhost-kv.mjs');
  const { stdout } = await promisify(execFile)(process.execPath, [script, '--data', data, ...args]);
  return stdout;
}

async function call(url, method, p, { body, headers = {} } = {}) {
  const init = { method, headers: { 'X-Real-IP': CLIENT, 'CF-Connecting-IP': FORGED, ...headers } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['content-type'] = 'application/json';
  }
  const res = await fetch(url + p, init);
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

const bearer = (t) => ({ authorization: 'Bearer ' + t });

test('self-host profile: login, proxy with assertion, refresh, logout, 429, restart with sessions intact', async (t) => {
  const started = Date.now();
  const dir = await mkdtemp(path.join(tmpdir(), 'wx-edge-selfhost-'));
  // `slow…` users answer after 1.5 s: a login still in flight when the restart begins.
  const sim = await startWechatSim({ appid: APPID, secret: APPSECRET, slowMs: 1500 });
  const origin = await startEchoOrigin();
  let profile;
  t.after(async () => {
    await profile?.kill();
    await sim.close();
    await origin.close();
    await rm(dir, { recursive: true, force: true });
  });

  // Settings and secrets in a file outside the config (and the repository).
  const envFile = path.join(dir, 'wx-edge.env');
  await writeFile(
    envFile,
    [
      `WX_APPID=${APPID}`,
      `WX_APPSECRET=${APPSECRET}`,
      `WX_API_BASE=${sim.url}`,
      `ORIGIN_URL=${origin.url}`,
      `TOKEN_SECRET=${randomBytes(48).toString('base64')}`,
      `REFRESH_SECRET=${randomBytes(48).toString('base64')}`,
      `IDENTITY_KEY=${randomBytes(32).toString('base64')}`,
      `ADMIN_TOKEN=${ADMIN_TOKEN}`,
      'WX_TIMEOUT_MS=5000',
      'PHONE_ALLOWLIST=true',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const data = path.join(dir, 'data');

  profile = await startProfile({ envFile, data, listen: '127.0.0.1:0' });
  const { url, port } = profile;
  t.diagnostic(`workerd listening after ${Date.now() - started} ms`);

  // Login: the address is the proxy's, never the client's CF-Connecting-IP.
  const login = await call(url, 'POST', '/auth/login', { body: { code: 'alice.1' } });
  assert.equal(login.status, 200, login.text);
  const { openid } = login.json;
  const record = await call(url, 'GET', `/auth/admin/users/${openid}`, { headers: bearer(ADMIN_TOKEN) });
  assert.equal(record.status, 200, record.text);
  assert.equal(record.json.last_login_ip, CLIENT);
  assert.equal(record.json.live_sessions, 1);

  const session = await call(url, 'GET', '/auth/session', { headers: bearer(login.json.access_token) });
  assert.equal(session.status, 200, session.text);
  assert.equal(session.json.openid, openid);

  // Proxy: identity headers and an assertion that verifies against the JWKS.
  const proxied = await call(url, 'GET', '/api/hello?x=1', {
    headers: { ...bearer(login.json.access_token), 'X-WX-OpenID': 'forged', 'True-Client-IP': FORGED },
  });
  assert.equal(proxied.status, 200, proxied.text);
  const seen = proxied.json.headers;
  assert.equal(proxied.json.url, '/api/hello?x=1');
  assert.equal(seen['x-wx-openid'], openid);
  assert.equal(seen['x-wx-client-ip'], CLIENT);
  assert.equal(seen['x-forwarded-for'], CLIENT);
  assert.equal(seen['authorization'], undefined);
  for (const [name, value] of Object.entries(seen)) {
    assert.ok(!value.includes(FORGED), `${name}: ${value} carries the client's forged address`);
  }
  const jwks = await call(url, 'GET', '/.well-known/jwks.json');
  assert.equal(jwks.status, 200);
  const { payload, protectedHeader } = await jwtVerify(seen['x-wx-identity'], createLocalJWKSet(jwks.json), {
    issuer: 'wx-edge',
    audience: new URL(origin.url).origin,
    typ: 'wx-identity+jwt',
    algorithms: ['EdDSA'],
  });
  assert.equal(payload.sub, openid);
  assert.equal(payload.appid, APPID);
  assert.ok(jwks.json.keys.some((k) => k.kid === protectedHeader.kid));

  // The staff allowlist, written through the profile's KV socket as an
  // operator would (scripts/allowlist-csv.mjs's JSON), read by the worker.
  const staff = path.join(dir, 'staff-kv.json');
  await writeFile(staff, JSON.stringify([{ key: 'allow:phone:+8613800138000', value: '张三' }]));
  await selfhostKv(data, 'bulk', staff);
  assert.equal(await selfhostKv(data, 'get', 'allow:phone:+8613800138000'), '张三\n');
  assert.equal(await selfhostKv(data, 'list', 'allow:'), 'allow:phone:+8613800138000\n');
  const bound = await call(url, 'POST', '/auth/phone', {
    body: { code: 'phone-13800138000' },
    headers: bearer(login.json.access_token),
  });
  assert.equal(bound.status, 200, bound.text);
  assert.equal(bound.json.phone_bound, true);
  const erin = await call(url, 'POST', '/auth/login', { body: { code: 'erin.1' } });
  const notStaff = await call(url, 'POST', '/auth/phone', {
    body: { code: 'phone-13900139000' },
    headers: bearer(erin.json.access_token),
  });
  assert.equal(notStaff.status, 403, notStaff.text);
  assert.equal(notStaff.json.error, 'not_internal_user');

  // Refresh: a new pair; the old refresh token is spent.
  const refreshed = await call(url, 'POST', '/auth/refresh', { body: { refresh_token: login.json.refresh_token } });
  assert.equal(refreshed.status, 200, refreshed.text);
  assert.notEqual(refreshed.json.refresh_token, login.json.refresh_token);

  // Logout: the session is over, its refresh token refused.
  const logout = await call(url, 'POST', '/auth/logout', { headers: bearer(refreshed.json.access_token) });
  assert.equal(logout.status, 204, logout.text);
  const afterLogout = await call(url, 'POST', '/auth/refresh', {
    body: { refresh_token: refreshed.json.refresh_token },
  });
  assert.equal(afterLogout.status, 401, afterLogout.text);

  // A burst against the operator endpoints from one address, each request
  // with another forged CF-Connecting-IP: counted per X-Real-IP all the
  // same. More than twice the limit, so one 60 s window gets more than
  // the limit wherever the burst falls.
  const burstFrom = '192.0.2.44';
  const burst = [];
  for (let i = 0; i < 2 * ADMIN_LIMIT + 10; i++) {
    burst.push(
      await call(url, 'GET', `/auth/admin/users/${openid}`, {
        headers: { ...bearer('not-the-admin-token'), 'X-Real-IP': burstFrom, 'CF-Connecting-IP': `203.0.113.${i}` },
      }),
    );
  }
  const limited = burst.filter((r) => r.status === 429);
  assert.ok(limited.length >= 10, `429s: ${limited.length} of ${burst.length}`);
  assert.ok(burst.every((r) => r.status === 429 || r.status === 401));
  assert.equal(limited[0].json.error, 'rate_limited');
  assert.ok(Number(limited[0].headers.get('retry-after')) > 0);
  // Another address is not limited by that burst.
  const other = await call(url, 'GET', `/auth/admin/users/${openid}`, {
    headers: { ...bearer('not-the-admin-token'), 'X-Real-IP': '192.0.2.45' },
  });
  assert.equal(other.status, 401, other.text);

  // Restart. Bob has a session; Carol's login is in flight when it begins.
  const bob = await call(url, 'POST', '/auth/login', { body: { code: 'bob.1' } });
  assert.equal(bob.status, 200, bob.text);
  const carolInFlight = call(url, 'POST', '/auth/login', { body: { code: 'slowcarol.1' } });
  await new Promise((r) => setTimeout(r, 300));
  const stopping = Date.now();
  profile.child.kill('SIGTERM');
  // A request that arrives while workerd drains is not served: its
  // connection is reset (or refused), never answered by the worker.
  await new Promise((r) => setTimeout(r, 100));
  await assert.rejects(fetch(url + '/.well-known/jwks.json'), (e) =>
    ['ECONNRESET', 'ECONNREFUSED', 'UND_ERR_SOCKET'].includes(e.cause?.code),
  );
  // The request in flight is finished before the process exits.
  const carol = await carolInFlight;
  assert.equal(carol.status, 200, carol.text);
  const [code] = await profile.exited;
  assert.equal(code, 0, profile.logs());
  t.diagnostic(`SIGTERM to exit: ${Date.now() - stopping} ms`);
  await assert.rejects(fetch(url + '/.well-known/jwks.json'), (e) => e.cause?.code === 'ECONNREFUSED');

  const restarting = Date.now();
  profile = await startProfile({ envFile, data, listen: `127.0.0.1:${port}` });
  t.diagnostic(`restart to listening: ${Date.now() - restarting} ms`);
  for (const who of [bob, carol]) {
    const r = await call(url, 'POST', '/auth/refresh', { body: { refresh_token: who.json.refresh_token } });
    assert.equal(r.status, 200, r.text);
    const s = await call(url, 'GET', '/auth/session', { headers: bearer(r.json.access_token) });
    assert.equal(s.status, 200, s.text);
    assert.equal(s.json.openid, who.json.openid);
  }
  // Alice's logout held across the restart too.
  const stillOut = await call(url, 'POST', '/auth/refresh', { body: { refresh_token: refreshed.json.refresh_token } });
  assert.equal(stillOut.status, 401, stillOut.text);
  const alice = await call(url, 'GET', `/auth/admin/users/${openid}`, { headers: bearer(ADMIN_TOKEN) });
  assert.equal(alice.json.live_sessions, 0);
  assert.equal(alice.json.login_count, 1);

  // Nothing secret in what the process printed.
  for (const secret of [APPSECRET, ADMIN_TOKEN, bob.json.refresh_token]) {
    assert.ok(!profile.logs().includes(secret));
  }
  t.diagnostic(`total ${Date.now() - started} ms`);
});
