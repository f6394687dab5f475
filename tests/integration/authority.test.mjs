// The session authority in workerd: one Durable Object per user decides
// every session change, so a revocation cannot be undone by anything in
// flight, and SESSION_CHECK=authority sees it everywhere at once.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, call, login, bearer, TEST_ADMIN_TOKEN } from '../support/stack.mjs';

const refresh = (s, token) => call(s, 'POST', '/auth/refresh', { body: { refresh_token: token } });
const logout = (s, token) => call(s, 'POST', '/auth/logout', { headers: bearer(token) });
const admin = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` };

function assertError(r, status, error) {
  assert.equal(r.status, status, `expected ${status} ${error}, got ${r.status} ${r.text}`);
  assert.equal(r.json?.error, error, r.text);
}

describe('every-request (the default)', () => {
  let s;
  before(async () => {
    s = await startStack();
  });
  after(async () => {
    await s?.close();
  });

  test('a thief refreshing a stolen token in a loop: once the logout returns, no refresh of the chain ever succeeds', async () => {
    for (let round = 0; round < 12; round++) {
      const victim = await login(s, `loop${round}.1`);
      let current = victim.refresh_token;
      const chain = [current];
      let loggedOut = false;
      const winsAfterLogout = [];
      const thief = (async () => {
        for (let i = 0; i < 25; i++) {
          const doneBefore = loggedOut;
          const r = await refresh(s, current);
          if (r.status === 200) {
            if (doneBefore) winsAfterLogout.push(i);
            current = r.json.refresh_token;
            chain.push(current);
          }
        }
      })();
      // The logout lands at a different moment each round.
      await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 40)));
      const out = await logout(s, victim.access_token);
      loggedOut = true;
      assert.equal(out.status, 204, out.text);
      await thief;
      assert.deepEqual(winsAfterLogout, [], `round ${round}: refreshes won after the logout returned`);
      for (const t of chain) {
        assert.notEqual((await refresh(s, t)).status, 200, `round ${round}: a token of the chain came back`);
      }
    }
  });

  test('admin revoke ends every session of the user; the user logs in again afterwards', async () => {
    const a = await login(s, 'leaver.1');
    const b = await login(s, 'leaver.2');
    assert.equal((await s.user(a.openid)).live_sessions, 2);
    const r = await call(s, 'POST', `/auth/admin/users/${a.openid}/revoke`, { headers: admin });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { revoked: 2 });
    for (const t of [a, b]) {
      assertError(await refresh(s, t.refresh_token), 401, 'invalid_refresh_token');
      assertError(await call(s, 'GET', '/api/x', { headers: bearer(t.access_token) }), 401, 'session_revoked');
    }
    assert.equal((await s.user(a.openid)).live_sessions, 0);
    const again = await login(s, 'leaver.3');
    assert.equal(again.openid, a.openid);
    assert.equal((await refresh(s, again.refresh_token)).status, 200);
    assert.equal((await s.user(a.openid)).live_sessions, 1);
  });

  test('operator endpoints: a missing or wrong token → 401; the view never carries a secret', async () => {
    const u = await login(s, 'viewed.1');
    assertError(await call(s, 'GET', `/auth/admin/users/${u.openid}`), 401, 'unauthorized');
    assertError(
      await call(s, 'GET', `/auth/admin/users/${u.openid}`, { headers: bearer('x'.repeat(64)) }),
      401,
      'invalid_token',
    );
    assertError(
      await call(s, 'GET', `/auth/admin/users/${u.openid}`, { headers: bearer(u.access_token) }),
      401,
      'invalid_token',
    );
    assertError(
      await call(s, 'POST', `/auth/admin/users/${u.openid}/revoke`, { headers: bearer(u.access_token) }),
      401,
      'invalid_token',
    );
    assert.equal((await refresh(s, u.refresh_token)).status, 200, 'nothing was revoked');
    const v = await call(s, 'GET', `/auth/admin/users/${u.openid}`, { headers: admin });
    assert.equal(v.status, 200, v.text);
    assert.equal(v.json.openid, u.openid);
    assert.equal(v.json.login_count, 1);
    assert.equal(v.json.live_sessions, 1);
    const sk = s.sim.sessionKeyOf('viewed');
    assert.ok(!v.text.includes(sk), 'session_key in the operator view');
    assert.ok(!/session_key|hash/.test(v.text), v.text);
    assertError(await call(s, 'GET', '/auth/admin/users/oNobodyAtAll', { headers: admin }), 404, 'not_found');
    assertError(await call(s, 'GET', '/auth/admin/users/a%2Fb', { headers: admin }), 400, 'invalid_request');
  });

  test('a revocation another edge has not seen yet: every-request trusts its KV replica until it catches up', async () => {
    const u = await login(s, 'stale1.1');
    const name = `session:${JSON.parse(Buffer.from(u.access_token.split('.')[1], 'base64url')).sid}`;
    const replica = await s.kv.get(name);
    assert.ok(replica, 'the replica was written before login answered');
    assert.equal((await logout(s, u.access_token)).status, 204);
    assert.equal(await s.kv.get(name), null, 'the replica was deleted before logout answered');
    // What an edge with a stale KV cache still sees.
    await s.kv.put(name, replica);
    assert.equal((await call(s, 'GET', '/api/x', { headers: bearer(u.access_token) })).status, 200);
    // The refresh token is dead regardless: refresh asks the authority.
    assertError(await refresh(s, u.refresh_token), 401, 'invalid_refresh_token');
  });

  test('a logout right after a refresh (two writes to one KV key within a second): the replica is deleted and the access token refused', async () => {
    const u = await login(s, 'quick1.1');
    const r = await refresh(s, u.refresh_token);
    assert.equal(r.status, 200, r.text);
    const name = `session:${JSON.parse(Buffer.from(r.json.access_token.split('.')[1], 'base64url')).sid}`;
    assert.equal((await logout(s, r.json.access_token)).status, 204);
    assert.equal(await s.kv.get(name), null, 'the replica was deleted before logout answered');
    assertError(await call(s, 'GET', '/api/x', { headers: bearer(r.json.access_token) }), 401, 'session_revoked');
  });
});

describe('SESSION_CHECK=authority', () => {
  let s;
  before(async () => {
    s = await startStack({ vars: { SESSION_CHECK: 'authority' } });
  });
  after(async () => {
    await s?.close();
  });

  test('a revoked access token is refused on the very next request, whatever KV still holds', async () => {
    const u = await login(s, 'strict.1');
    const ok = await call(s, 'GET', '/api/x', { headers: bearer(u.access_token) });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.headers['x-wx-openid'], u.openid);
    const name = `session:${JSON.parse(Buffer.from(u.access_token.split('.')[1], 'base64url')).sid}`;
    const replica = await s.kv.get(name);
    assert.equal((await logout(s, u.access_token)).status, 204);
    await s.kv.put(name, replica); // a stale replica changes nothing here
    const before = s.origin.requests.length;
    assertError(await call(s, 'GET', '/api/x', { headers: bearer(u.access_token) }), 401, 'session_revoked');
    assert.equal(s.origin.requests.length, before, 'nothing reached the origin');
  });

  test('admin revoke holds on the next request too', async () => {
    const u = await login(s, 'strict2.1');
    assert.equal((await call(s, 'GET', '/api/x', { headers: bearer(u.access_token) })).status, 200);
    const r = await call(s, 'POST', `/auth/admin/users/${u.openid}/revoke`, { headers: admin });
    assert.equal(r.status, 200, r.text);
    assertError(await call(s, 'GET', '/api/x', { headers: bearer(u.access_token) }), 401, 'session_revoked');
  });
});

describe('without ADMIN_TOKEN', () => {
  let s;
  before(async () => {
    s = await startStack({ omit: ['ADMIN_TOKEN'] });
  });
  after(async () => {
    await s?.close();
  });

  test('the operator endpoints answer 404, with or without a bearer', async () => {
    const u = await login(s, 'noadmin.1');
    for (const headers of [{}, admin]) {
      assertError(await call(s, 'GET', `/auth/admin/users/${u.openid}`, { headers }), 404, 'not_found');
      assertError(await call(s, 'POST', `/auth/admin/users/${u.openid}/revoke`, { headers }), 404, 'not_found');
    }
    assert.equal((await refresh(s, u.refresh_token)).status, 200);
  });
});
