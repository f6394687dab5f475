import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, call, login, bearer } from '../support/stack.mjs';

let stack;
before(async () => {
  stack = await startStack();
});
after(async () => {
  await stack?.close();
});

test('login then proxy', async () => {
  const t = await login(stack, 'alice.1');
  assert.equal(t.token_type, 'Bearer');
  const r = await call(stack, 'GET', '/api/orders?x=1', {
    headers: { ...bearer(t.access_token), 'x-wx-openid': 'spoof' },
  });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.headers['x-wx-openid'], t.openid);
  console.log(r.json);
});
