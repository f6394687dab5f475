// The worker's own rate limits when the limiter itself fails (its binding
// throws): login and the code2Session ceiling and the operator endpoints
// fail closed (503 with Retry-After, WeChat not called), refresh and phone
// binding fail open; every failure is a `limiter_failed` log line with a
// count. A "broken" binding here is a plain object where a rate-limit
// binding should be: calling its `limit` throws.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, call, login, bearer, TEST_ADMIN_TOKEN } from '../support/stack.mjs';

const NAMES = [
  'LOGIN_LIMITER',
  'REFRESH_LIMITER',
  'PHONE_LIMITER',
  'WX_LOGIN_LIMITER',
  'ADMIN_LIMITER',
  'SERVICE_LIMITER',
];

/** A stack whose `broken` limiters throw; the others are generous. */
async function stackWithBroken(t, broken) {
  const ratelimits = Object.fromEntries(
    NAMES.filter((n) => !broken.includes(n)).map((n, i) => [
      n,
      { namespace_id: String(4001 + i), simple: { limit: 10_000, period: 60 } },
    ]),
  );
  const vars = Object.fromEntries(broken.map((n) => [n, { broken: true }]));
  const s = await startStack({ vars, miniflare: { ratelimits } });
  t.after(() => s.close());
  return s;
}

async function limiterLines(s) {
  await new Promise((r) => setTimeout(r, 300)); // let workerd flush stdout
  return s
    .logs()
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('{') && l.includes('"limiter_failed"'))
    .map((l) => JSON.parse(l));
}

test('a failing code2Session ceiling fails login closed: 503 with Retry-After, WeChat not called; logged and counted', async (t) => {
  const s = await stackWithBroken(t, ['WX_LOGIN_LIMITER']);
  for (let i = 0; i < 2; i++) {
    const r = await call(s, 'POST', '/auth/login', { body: { code: `closed${i}.1` } });
    assert.equal(r.status, 503, r.text);
    assert.equal(r.json.error, 'store_unavailable');
    assert.ok(r.headers.get('retry-after'), 'Retry-After');
  }
  assert.equal(s.sim.stats().code2session, 0, 'WeChat was not called');
  const lines = await limiterLines(s);
  assert.deepEqual(
    lines.map((l) => [l.binding, l.on_failure, l.failures]),
    [
      ['WX_LOGIN_LIMITER', 'closed', 1],
      ['WX_LOGIN_LIMITER', 'closed', 2],
    ],
  );
});

test('failing refresh and phone limiters fail open; a failing operator limiter fails closed', async (t) => {
  const s = await stackWithBroken(t, ['REFRESH_LIMITER', 'PHONE_LIMITER', 'ADMIN_LIMITER']);
  const u = await login(s, 'open.1');
  const r = await call(s, 'POST', '/auth/refresh', { body: { refresh_token: u.refresh_token } });
  assert.equal(r.status, 200, r.text);
  const p = await call(s, 'POST', '/auth/phone', {
    body: { code: 'phone-13800138000' },
    headers: bearer(r.json.access_token),
  });
  assert.equal(p.status, 200, p.text);
  const a = await call(s, 'GET', `/auth/admin/users/${u.openid}`, { headers: bearer(TEST_ADMIN_TOKEN) });
  assert.equal(a.status, 503, a.text);
  assert.equal(a.json.error, 'store_unavailable');
  const lines = await limiterLines(s);
  const seen = Object.fromEntries(lines.map((l) => [l.binding, l.on_failure]));
  assert.deepEqual(seen, { REFRESH_LIMITER: 'open', PHONE_LIMITER: 'open', ADMIN_LIMITER: 'closed' });
});
