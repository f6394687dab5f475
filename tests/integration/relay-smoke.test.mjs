// A short smoke of the WeChat relay in workerd (the full suite for issue
// 19 is service.test.mjs): a WeChat stand-in of its own that checks the
// token and echoes bytes back as an image, so the worker's relay is seen
// end to end: 404 without SERVICE_TOKEN, 401/403, bytes both ways, the
// client's access_token replaced, one refetch on 40001, 413 over 2 MiB.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import { startStack, call, bearer, TEST_ADMIN_TOKEN, TEST_APPSECRET } from '../support/stack.mjs';

const SERVICE_TOKEN = randomBytes(48).toString('base64');

/** WeChat for the relay: stable_token (normal mode hands out the current
 * token, force_refresh a new one) and /wxa/echo_image, which refuses any
 * token but the valid one with 40001 and otherwise answers the bytes it
 * got as image/png. */
async function startWechat() {
  const state = { current: 'T1', valid: 'T1', issued: 1, seen: [] };
  const server = createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const body = Buffer.concat(chunks);
    const url = new URL(req.url, 'http://wechat.invalid');
    state.seen.push({
      method: req.method,
      path: url.pathname,
      query: url.search,
      type: req.headers['content-type'],
      body,
    });
    const json = (v) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(JSON.stringify(v));
    };
    if (url.pathname === '/cgi-bin/stable_token') {
      if (JSON.parse(body.toString()).force_refresh) {
        state.issued += 1;
        state.current = `T${state.issued}`;
      }
      return json({ access_token: state.current, expires_in: 7200 });
    }
    if (url.pathname === '/wxa/echo_image') {
      if (url.searchParams.getAll('access_token').join() !== state.valid)
        return json({ errcode: 40001, errmsg: 'invalid credential' });
      res.writeHead(200, { 'content-type': 'image/png', 'x-wechat-internal': 'secret-ish' });
      return res.end(body);
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"errcode":404}');
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    state,
    close: () => new Promise((r) => server.close(r)),
  };
}

let wechat;
let stack;
before(async () => {
  wechat = await startWechat();
  stack = await startStack({ sim: wechat, vars: { SERVICE_TOKEN } });
});
after(async () => {
  await stack?.close();
  await wechat?.close();
});

const service = bearer(SERVICE_TOKEN);
const relayed = () => wechat.state.seen.filter((s) => s.path !== '/cgi-bin/stable_token');

async function post(p, bytes, headers = service) {
  const res = await fetch(stack.url + p, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/octet-stream' },
    body: bytes,
  });
  return { status: res.status, headers: res.headers, bytes: Buffer.from(await res.arrayBuffer()) };
}

test('relay smoke: bytes both ways, the client token replaced, one refetch on 40001', async () => {
  const upload = Buffer.from(Array.from({ length: 70_000 }, (_, i) => i % 256));
  let r = await post('/auth/service/wechat/wxa/echo_image?access_token=mine&ACCESS_TOKEN=again&x=1', upload);
  assert.equal(r.status, 200, r.bytes.toString());
  assert.equal(r.headers.get('content-type'), 'image/png');
  assert.equal(r.headers.get('cache-control'), 'no-store');
  assert.equal(r.headers.get('x-wechat-internal'), null, 'no other WeChat header');
  assert.equal(r.headers.get('x-wx-edge-error'), null);
  assert.ok(r.bytes.equals(upload), 'the answer is the bytes WeChat sent');
  let seen = relayed().at(-1);
  assert.equal(seen.query, '?access_token=T1&x=1');
  assert.equal(seen.type, 'application/octet-stream');
  assert.ok(seen.body.equals(upload), 'WeChat got the bytes the origin sent');

  // WeChat stops taking T1: one refetch (forced, since normal mode still
  // hands out T1) and one retry with the new token.
  wechat.state.valid = 'T2';
  const before = wechat.state.seen.length;
  r = await post('/auth/service/wechat/wxa/echo_image', Buffer.from([0, 1, 2, 255]));
  assert.equal(r.status, 200, r.bytes.toString());
  assert.deepEqual([...r.bytes], [0, 1, 2, 255]);
  const calls = wechat.state.seen
    .slice(before)
    .map((s) => `${s.path}${s.path.includes('stable') ? ':' + JSON.parse(s.body).force_refresh : s.query}`);
  assert.deepEqual(calls, [
    '/wxa/echo_image?access_token=T1',
    '/cgi-bin/stable_token:false',
    '/cgi-bin/stable_token:true',
    '/wxa/echo_image?access_token=T2',
  ]);
  // A second refusal is WeChat's answer, not a third try.
  wechat.state.valid = 'never';
  const n = wechat.state.seen.length;
  const j = await call(stack, 'GET', '/auth/service/wechat/wxa/echo_image', { headers: service });
  assert.equal(j.status, 200);
  assert.equal(j.json.errcode, 40001);
  assert.equal(wechat.state.seen.length - n, 4, 'call, two token fetches, one retry');
  for (const s of relayed()) {
    assert.ok(!s.query.includes(TEST_APPSECRET) && !s.body.toString('latin1').includes(TEST_APPSECRET));
  }
  wechat.state.valid = 'T3';
});

test('relay smoke: refusals, bearers and the size limit', async () => {
  const n = wechat.state.seen.length;
  for (const p of ['cgi-bin/token', 'CGI-BIN/Stable_Token', 'sns/jscode2session', 'wxa/checksession']) {
    const r = await call(stack, 'GET', `/auth/service/wechat/${p}`, { headers: service });
    assert.equal(r.status, 403, p);
    assert.equal(r.json.error, 'relay_refused');
    assert.equal(r.headers.get('x-wx-edge-error'), 'relay_refused');
  }
  assert.equal((await call(stack, 'GET', '/auth/service/wechat/wxa/echo_image')).json.error, 'unauthorized');
  for (const token of [TEST_ADMIN_TOKEN, 'wrong']) {
    const r = await call(stack, 'GET', '/auth/service/wechat/wxa/echo_image', { headers: bearer(token) });
    assert.equal(r.status, 401);
    assert.equal(r.json.error, 'invalid_token');
  }
  const big = await post('/auth/service/wechat/wxa/echo_image', Buffer.alloc(2 * 1024 * 1024 + 1, 7));
  assert.equal(big.status, 413);
  assert.equal(wechat.state.seen.length, n, 'WeChat was not called');
  const lines = stack
    .logs()
    .split('\n')
    .filter((l) => l.trim().startsWith('{') && l.includes('"service_relay"'));
  assert.ok(lines.length >= 4, stack.logs());
  assert.ok(!stack.logs().includes('access_token=T'), 'the relayed URL is never logged');
});

test('relay smoke: without SERVICE_TOKEN the service paths are 404', async (t) => {
  const bare = await startStack({ sim: wechat });
  t.after(() => bare.close());
  for (const [m, p] of [
    ['GET', '/auth/service/wechat/wxa/echo_image'],
    ['POST', '/auth/service/users/o1/sign'],
    ['POST', '/auth/service/users/o1/session-key/check'],
  ]) {
    const r = await call(bare, m, p, { headers: service, body: m === 'POST' ? { data: 'x' } : undefined });
    assert.equal(r.status, 404, `${m} ${p}`);
    assert.equal(r.json.error, 'not_found');
  }
});
