// CLIENT_IP_HEADER in workerd (Miniflare): the worker believes the client's
// address only from the configured header. With the self-host profile's
// X-Real-IP (overwritten by the reverse proxy), a client-sent
// CF-Connecting-IP reaches neither the rate-limit key, nor the user record,
// nor the origin.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, call, bearer, freshLimitWindow } from '../support/stack.mjs';

const PROXY_SAYS = '198.51.100.7';
const FORGED = '203.0.113.66';

async function recordOf(stack, openid) {
  const u = await stack.user(openid);
  assert.ok(u, `no record for ${openid}`);
  return u;
}

test('CLIENT_IP_HEADER=X-Real-IP: a forged CF-Connecting-IP reaches no rate-limit key, user record or origin', async (t) => {
  const stack = await startStack({ vars: { CLIENT_IP_HEADER: 'X-Real-IP' }, limits: { LOGIN_LIMITER: 3 } });
  t.after(() => stack.close());

  const login = await call(stack, 'POST', '/auth/login', {
    body: { code: 'realip.1' },
    headers: { 'X-Real-IP': PROXY_SAYS, 'CF-Connecting-IP': FORGED },
  });
  assert.equal(login.status, 200, login.text);
  assert.equal((await recordOf(stack, login.json.openid)).last_login_ip, PROXY_SAYS);

  const proxied = await call(stack, 'GET', '/where', {
    headers: {
      ...bearer(login.json.access_token),
      'X-Real-IP': PROXY_SAYS,
      'CF-Connecting-IP': FORGED,
      'cf-connecting-ipv6': '2001:db8::66',
      'True-Client-IP': FORGED,
    },
  });
  assert.equal(proxied.status, 200, proxied.text);
  const seen = proxied.json.headers;
  assert.equal(seen['x-wx-client-ip'], PROXY_SAYS);
  assert.equal(seen['x-forwarded-for'], PROXY_SAYS);
  // The trusted header itself is the worker's to read, not the origin's.
  assert.equal(seen['x-real-ip'], undefined);
  for (const [name, value] of Object.entries(seen)) {
    assert.ok(!value.includes(FORGED) && !value.includes('2001:db8::66'), `${name}: ${value}`);
  }

  // LOGIN_LIMITER counts per X-Real-IP: a new CF-Connecting-IP on each
  // attempt does not buy another one.
  await freshLimitWindow();
  const statuses = [];
  for (let i = 0; i < 5; i++) {
    const r = await call(stack, 'POST', '/auth/login', {
      body: { code: `burst.${i}` },
      headers: { 'X-Real-IP': '192.0.2.10', 'CF-Connecting-IP': `203.0.113.${i}` },
    });
    statuses.push(r.status);
  }
  assert.deepEqual(statuses, [200, 200, 200, 429, 429]);
  // Another address the proxy reports is counted on its own.
  const other = await call(stack, 'POST', '/auth/login', {
    body: { code: 'burst.other' },
    headers: { 'X-Real-IP': '192.0.2.11', 'CF-Connecting-IP': '203.0.113.1' },
  });
  assert.equal(other.status, 200, other.text);
});

test('CLIENT_IP_HEADER unset: CF-Connecting-IP (Cloudflare sets it) and never a client-sent X-Real-IP', async (t) => {
  const stack = await startStack();
  t.after(() => stack.close());
  const login = await call(stack, 'POST', '/auth/login', {
    body: { code: 'cfip.1' },
    headers: { 'CF-Connecting-IP': PROXY_SAYS, 'X-Real-IP': FORGED },
  });
  assert.equal(login.status, 200, login.text);
  assert.equal((await recordOf(stack, login.json.openid)).last_login_ip, PROXY_SAYS);
  const proxied = await call(stack, 'GET', '/where', {
    headers: { ...bearer(login.json.access_token), 'CF-Connecting-IP': PROXY_SAYS, 'X-Real-IP': FORGED },
  });
  assert.equal(proxied.json.headers['x-wx-client-ip'], PROXY_SAYS);
  assert.ok(!proxied.text.includes(FORGED));
});

test('CLIENT_IP_HEADER naming a header the origin would receive → 500 naming it, never echoing it', async (t) => {
  const stack = await startStack({ vars: { CLIENT_IP_HEADER: 'X-Edge-Addr' } });
  t.after(() => stack.close());
  const r = await call(stack, 'POST', '/auth/login', { body: { code: 'bad.1' } });
  assert.equal(r.status, 500);
  assert.equal(r.json.error, 'server_misconfigured');
  assert.match(r.json.message, /CLIENT_IP_HEADER/);
  assert.ok(!r.text.includes('X-Edge-Addr'));
  assert.match(stack.logs(), /CLIENT_IP_HEADER/);
});
