// Operator logs: one JSON line per auth event and per error, with the
// fields Workers Logs indexes, and no secret in any of them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { startStack, call, login, bearer, freshLimitWindow, TEST_ADMIN_TOKEN } from '../support/stack.mjs';

let s;
before(async () => {
  s = await startStack({ limits: { LOGIN_LIMITER: 6 } });
});
after(async () => {
  await s?.close();
});

/** The JSON event lines the worker has logged so far. */
async function lines(stack = s) {
  await new Promise((r) => setTimeout(r, 300)); // let workerd flush stdout
  return stack
    .logs()
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('{') && l.includes('"event"'))
    .map((l) => JSON.parse(l));
}

test('auth events and errors are JSON lines with event, outcome, code, duration and a hashed user', async () => {
  await freshLimitWindow(); // the flood below must meet LOGIN_LIMITER in one window
  const u = await login(s, 'logged.1');
  await call(s, 'POST', '/auth/login', { body: { code: 'invalid.1' } });
  const r = await call(s, 'POST', '/auth/refresh', { body: { refresh_token: u.refresh_token } });
  assert.equal(r.status, 200, r.text);
  await call(s, 'POST', '/auth/phone', { body: { code: 'phone-13800138000' }, headers: bearer(r.json.access_token) });
  await call(s, 'GET', '/auth/session', { headers: bearer(r.json.access_token) });
  await call(s, 'GET', '/api/ok', { headers: bearer(r.json.access_token) }); // a proxied success: no line
  await call(s, 'GET', '/api/nope'); // a proxied error: a line
  await call(s, 'POST', '/auth/logout', { headers: bearer(r.json.access_token) });
  await call(s, 'POST', `/auth/admin/users/${u.openid}/revoke`, { headers: bearer(TEST_ADMIN_TOKEN) });
  for (let i = 0; i < 6; i++) await call(s, 'POST', '/auth/login', { body: { code: `flood${i}.1` } });

  const all = await lines();
  const by = (event, outcome) => all.filter((l) => l.event === event && (!outcome || l.outcome === outcome));
  for (const l of all) {
    assert.equal(typeof l.event, 'string');
    assert.ok(['ok', 'error'].includes(l.outcome), JSON.stringify(l));
    assert.equal(typeof l.duration_ms, 'number');
    assert.ok(l.duration_ms >= 0 && l.duration_ms < 60_000, JSON.stringify(l));
    assert.equal(typeof l.request_id, 'string');
    assert.ok(l.request_id.length > 0);
    if (l.outcome === 'error') {
      assert.equal(typeof l.code, 'string', JSON.stringify(l));
      assert.equal(typeof l.status, 'number');
    }
    if ('user' in l) assert.match(l.user, /^[0-9a-f]{16}$/);
  }
  assert.ok(by('login', 'ok').length >= 1);
  const failed = by('login', 'error').filter((l) => l.code === 'invalid_code');
  assert.equal(failed.length, 1, 'one login failed with invalid_code');
  assert.equal(failed[0].wechat_errcode, 40029);
  assert.equal(by('refresh', 'ok').length, 1);
  assert.equal(by('logout', 'ok').length, 1);
  assert.equal(by('session', 'ok').length, 1);
  assert.equal(by('revoke', 'ok').length, 1);
  assert.ok(by('phone').length >= 1);
  assert.equal(by('proxy', 'ok').length, 0, 'a proxied success is not logged');
  assert.equal(by('proxy', 'error').filter((l) => l.code === 'unauthorized').length, 1);
  assert.ok(by('login', 'error').filter((l) => l.code === 'rate_limited').length >= 1, 'the flood shows');

  // One user, one hash, across events.
  const mine = [...by('login', 'ok'), ...by('refresh', 'ok'), ...by('logout', 'ok'), ...by('revoke', 'ok')]
    .map((l) => l.user)
    .filter(Boolean);
  assert.ok(mine.length >= 4);
  assert.equal(new Set(mine.slice(0, 1).concat(by('refresh', 'ok').map((l) => l.user))).size, 1);

  // Nothing secret, nothing personal.
  const text = JSON.stringify(all) + s.logs();
  const secrets = [
    u.openid,
    u.access_token,
    u.refresh_token,
    r.json.refresh_token,
    s.sim.sessionKeyOf('logged'),
    s.appsecret,
    s.tokenSecret,
    s.identityKey,
    TEST_ADMIN_TOKEN,
    '13800138000',
  ];
  for (const secret of secrets) assert.ok(!text.includes(secret), `a log line carries ${secret.slice(0, 6)}…`);
});

/** The user hash a log line carries for `openid` (see src/logs.rs). */
function userHash(stack, openid) {
  const salt = createHash('sha256').update('wx-edge/log-salt/v1\0').update(stack.refreshSecret).digest();
  return createHmac('sha256', salt).update(openid).digest().subarray(0, 8).toString('hex');
}

test('the log names a user only from a verified identity: forged refresh tokens and refused operators name nobody', async (t) => {
  // A stack of its own: the first test spent the login budget.
  const s = await startStack();
  t.after(() => s.close());
  const victim = await login(s, 'logvictim.1');
  const attacker = await login(s, 'logattacker.1');
  const victimHash = userHash(s, victim.openid);
  const [, sid, secret, tag] = attacker.refresh_token.split('.');
  const [vUser, vSid] = victim.refresh_token.split('.');
  const before = (await lines(s)).length;
  for (const forged of [`${vUser}.${sid}.${secret}.${tag}`, `${vUser}.${vSid}.${secret}.${tag}`]) {
    const r = await call(s, 'POST', '/auth/refresh', { body: { refresh_token: forged } });
    assert.equal(r.status, 401, r.text);
  }
  for (const headers of [{}, bearer('not-the-admin-token'), bearer(victim.access_token)]) {
    const r = await call(s, 'GET', `/auth/admin/users/${victim.openid}`, { headers });
    assert.equal(r.status, 401, r.text);
    const v = await call(s, 'POST', `/auth/admin/users/${victim.openid}/revoke`, { headers });
    assert.equal(v.status, 401, v.text);
  }
  const added = (await lines(s)).slice(before);
  const refreshes = added.filter((l) => l.event === 'refresh');
  assert.equal(refreshes.length, 2, JSON.stringify(added));
  const refused = added.filter((l) => l.event === 'operator_refused');
  assert.equal(refused.length, 6, 'a refused operator call is its own event');
  for (const l of [...refreshes, ...refused]) {
    assert.equal(l.outcome, 'error');
    assert.equal(l.status, 401);
    assert.ok(!('user' in l), `names a user: ${JSON.stringify(l)}`);
  }
  assert.ok(!added.some((l) => l.user === victimHash), 'the victim is never named');
  // An admitted operator names the user the call was about.
  await call(s, 'GET', `/auth/admin/users/${victim.openid}`, { headers: bearer(TEST_ADMIN_TOKEN) });
  const admitted = (await lines(s)).filter((l) => l.event === 'admin_user' && l.outcome === 'ok');
  assert.ok(
    admitted.some((l) => l.user === victimHash),
    JSON.stringify(admitted),
  );
});
