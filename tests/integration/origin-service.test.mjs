// The origin packages' service clients against the built worker in workerd
// (with SERVICE_TOKEN): Node's createServiceClient
// (origin/node/lib/service.mjs) and Python's ServiceClient
// (origin/python/wx_edge_service.py, run by python3 from
// origin/python/service_live.py). These are the README's service examples:
// each call returns what WeChat and the worker said, and each refusal is the
// typed error an origin catches. WeChat is a stand-in of this file's own
// that checks signatures as WeChat does (hex HMAC-SHA256 keyed with the
// session_key's base64 text) and answers the relay's targets.
//
// Run: node_modules/.bin/node --test --test-concurrency=1 tests/integration/origin-service.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, createHash, createHmac, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { startStack, login, freshLimitWindow, TEST_APPID } from '../support/stack.mjs';
import { assertMatchesContract } from '../support/openapi.mjs';
import {
  createServiceClient,
  NoLiveSessionError,
  RateLimitedError,
  RelayRefusedError,
  ServiceAuthError,
  ServiceError,
} from '../../origin/node/lib/service.mjs';

/** WeChat's login-state signature. */
const loginSignature = (sessionKey, message) =>
  createHmac('sha256', Buffer.from(sessionKey, 'utf8')).update(message, 'utf8').digest('hex');
/** The "PNG" getwxacodeunlimit answers for a scene: bytes that are not UTF-8. */
const pngFor = (scene) =>
  Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    createHash('sha256').update(scene).digest(),
  ]);

/**
 * WeChat, as far as these calls need it: code2Session (the user is the code
 * before its first '.'), stable_token, checksession and resetusersessionkey
 * (signature checked against the user's latest key), msg_sec_check (87014
 * for "forbidden") and getwxacodeunlimit (image/png bytes).
 */
async function startWechat() {
  const keys = new Map(); // openid → latest session_key
  const token = 'AT-' + randomBytes(8).toString('hex');
  const server = createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const body = Buffer.concat(chunks).toString();
    const url = new URL(req.url, 'http://wechat.invalid');
    const q = Object.fromEntries(url.searchParams);
    const reply = (v, type = 'text/plain') => {
      const bytes = Buffer.isBuffer(v) ? v : Buffer.from(JSON.stringify(v));
      res.writeHead(200, { 'content-type': type, 'content-length': bytes.length });
      res.end(bytes);
    };
    const tokenOk = q.access_token === token;
    switch (url.pathname) {
      case '/sns/jscode2session': {
        const openid = 'oSvc' + q.js_code.split('.')[0];
        keys.set(openid, randomBytes(16).toString('base64'));
        return reply({ openid, session_key: keys.get(openid) });
      }
      case '/cgi-bin/stable_token':
        return reply({ access_token: token, expires_in: 7200 });
      case '/wxa/checksession':
      case '/wxa/resetusersessionkey': {
        if (!tokenOk) return reply({ errcode: 40001, errmsg: 'invalid credential' });
        const key = keys.get(q.openid);
        if (!key || q.sig_method !== 'hmac_sha256' || q.signature !== loginSignature(key, '')) {
          return reply({ errcode: 87009, errmsg: 'invalid signature' });
        }
        if (url.pathname === '/wxa/checksession') return reply({ errcode: 0, errmsg: 'ok' });
        keys.set(q.openid, randomBytes(16).toString('base64'));
        return reply({ errcode: 0, errmsg: 'ok', openid: q.openid, session_key: keys.get(q.openid) });
      }
      case '/wxa/msg_sec_check':
        if (!tokenOk) return reply({ errcode: 40001, errmsg: 'invalid credential' });
        return JSON.parse(body).content.includes('forbidden')
          ? reply({ errcode: 87014, errmsg: 'risky content' })
          : reply({ errcode: 0, errmsg: 'ok', result: { suggest: 'pass', label: 100 } });
      case '/wxa/getwxacodeunlimit':
        if (!tokenOk) return reply({ errcode: 40001, errmsg: 'invalid credential' });
        return reply(pngFor(JSON.parse(body).scene), 'image/png');
      default:
        return reply({ errcode: -1, errmsg: 'not simulated' });
    }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    keyOf: (openid) => keys.get(openid),
    /** Open data sealed as WeChat does, under the user's latest key. */
    seal(openid, value) {
      const iv = randomBytes(16);
      const c = createCipheriv('aes-128-cbc', Buffer.from(keys.get(openid), 'base64'), iv);
      const data = Buffer.concat([c.update(JSON.stringify(value), 'utf8'), c.final()]);
      return { encryptedData: data.toString('base64'), iv: iv.toString('base64') };
    },
    close: () => new Promise((r) => server.close(r)),
  };
}

/** fetch for the clients: every answer of the worker is also held to openapi.yaml. */
async function checkedFetch(url, init) {
  const res = await fetch(url, init);
  const u = new URL(url);
  assertMatchesContract(init.method, u.pathname + u.search, {
    status: res.status,
    headers: res.headers,
    text: await res.clone().text(),
  });
  return res;
}

const watermark = () => ({ appid: TEST_APPID, timestamp: Math.floor(Date.now() / 1000) });

const SERVICE_TOKEN = randomBytes(48).toString('base64');
let wechat;
let stack;
let edge;

before(async () => {
  wechat = await startWechat();
  stack = await startStack({ vars: { SERVICE_TOKEN }, limits: { SERVICE_LIMITER: 10_000 }, sim: wechat });
  edge = createServiceClient({ baseUrl: stack.url, token: SERVICE_TOKEN, fetch: checkedFetch });
});
after(async () => {
  await stack?.close();
  await wechat?.close();
});

test('Node: check, sign, decrypt, reset and the relay, as an origin calls them', async () => {
  const { openid } = await login(stack, 'svcnode.1');
  assert.equal(await edge.checkSessionKey(openid), true);

  const data = JSON.stringify({ order: 42, note: '签名' });
  assert.deepEqual(await edge.sign(openid, data), {
    signature: loginSignature(wechat.keyOf(openid), data),
    sig_method: 'hmac_sha256',
  });

  const sealed = wechat.seal(openid, { openGId: 'gGroup1', watermark: watermark() });
  const opened = await edge.decrypt(openid, sealed);
  assert.equal(opened.openGId, 'gGroup1');
  assert.equal(opened.watermark.appid, stack.appid);

  const before = wechat.keyOf(openid);
  assert.equal(await edge.resetSessionKey(openid), true);
  const after = wechat.keyOf(openid);
  assert.notEqual(after, before, 'WeChat issued a new session_key');
  assert.equal(
    (await edge.sign(openid, data)).signature,
    loginSignature(after, data),
    'the worker signs with the new key',
  );
  assert.equal(await edge.checkSessionKey(openid), true);

  // WeChat's answers through the relay come back as they are, errcodes included.
  const ok = await edge.relay('wxa/msg_sec_check', { json: { content: 'hello', version: 2, scene: 1, openid } });
  assert.equal(ok.status, 200);
  assert.equal(ok.json().errcode, 0);
  const risky = await edge.relay('wxa/msg_sec_check', {
    json: { content: 'a forbidden word here', version: 2, scene: 1, openid },
  });
  assert.equal(risky.json().errcode, 87014);
  const png = await edge.relay('wxa/getwxacodeunlimit', { json: { scene: 'a=1' } });
  assert.equal(png.contentType, 'image/png');
  assert.deepEqual(Buffer.from(png.body), pngFor('a=1'));
});

test("Node: the worker's refusals are typed errors with error, status and retryAfter", async () => {
  const nobody = await edge.sign('oNobodyLoggedIn00000000000', 'x').catch((e) => e);
  assert.ok(nobody instanceof NoLiveSessionError, String(nobody));
  assert.deepEqual([nobody.status, nobody.error, nobody.retryAfter], [404, 'not_found', null]);
  assert.match(nobody.message, /no live session/);

  const wrong = await createServiceClient({ baseUrl: stack.url, token: 'not-the-service-token', fetch: checkedFetch })
    .checkSessionKey('oAnyone')
    .catch((e) => e);
  assert.ok(wrong instanceof ServiceAuthError, String(wrong));
  assert.deepEqual([wrong.status, wrong.error], [401, 'invalid_token']);

  for (const path of ['cgi-bin/token', 'sns/jscode2session', 'wxa/checksession', 'cgi-bin/stable_token']) {
    const refused = await edge.relay(path, { json: {} }).catch((e) => e);
    assert.ok(refused instanceof RelayRefusedError, `${path}: ${refused}`);
    assert.deepEqual([refused.status, refused.error], [403, 'relay_refused']);
  }

  const { openid } = await login(stack, 'svcnode2.1');
  const bad = await edge
    .decrypt(openid, { encryptedData: Buffer.alloc(32).toString('base64'), iv: Buffer.alloc(16).toString('base64') })
    .catch((e) => e);
  assert.ok(bad instanceof ServiceError, String(bad));
  assert.equal(bad.status, 400);
  assert.equal(bad.error, 'decrypt_failed');
});

test('Node: over SERVICE_LIMITER the client gets RateLimitedError with retryAfter', async () => {
  const limited = await startStack({ vars: { SERVICE_TOKEN }, limits: { SERVICE_LIMITER: 2 }, sim: wechat });
  try {
    const c = createServiceClient({ baseUrl: limited.url, token: SERVICE_TOKEN, fetch: checkedFetch });
    await freshLimitWindow();
    let err;
    for (let i = 0; i < 5 && !err; i++)
      err = await c.checkSessionKey('oSomeone').catch((e) => (e instanceof RateLimitedError ? e : undefined));
    assert.ok(err, 'RateLimitedError within 5 calls over a limit of 2');
    assert.equal(err.status, 429);
    assert.equal(err.error, 'rate_limited');
    assert.ok(Number.isInteger(err.retryAfter) && err.retryAfter > 0, `retryAfter ${err.retryAfter}`);
  } finally {
    await limited.close();
  }
});

test('Python: the same calls through wx_edge_service.ServiceClient', async (t) => {
  const probe = spawnSync('python3', ['--version']);
  if (probe.status !== 0) return t.skip('python3 not found');
  const { openid } = await login(stack, 'svcpy.1');
  const data = 'python signs this';
  const sealed = wechat.seal(openid, { shareTicket: 'st1', watermark: watermark() });
  const keyBefore = wechat.keyOf(openid);
  // Not spawnSync: the WeChat simulator answers from this process's event loop.
  const run = await promisify(execFile)(
    'python3',
    [fileURLToPath(new URL('../../origin/python/service_live.py', import.meta.url))],
    {
      env: {
        ...process.env,
        WX_EDGE_URL: stack.url,
        WX_EDGE_SERVICE_TOKEN: SERVICE_TOKEN,
        OPENID: openid,
        SIGN_DATA: data,
        ENCRYPTED: JSON.stringify(sealed),
      },
      encoding: 'utf8',
      timeout: 60_000,
    },
  );
  const out = JSON.parse(run.stdout);
  assert.equal(out.valid, true);
  assert.deepEqual(out.signed, { signature: loginSignature(keyBefore, data), sig_method: 'hmac_sha256' });
  assert.equal(out.decrypted.shareTicket, 'st1');
  assert.deepEqual([out.relay.status, out.relay.json.errcode], [200, 0]);
  assert.deepEqual(
    [out.png.status, out.png.content_type, out.png.hex],
    [200, 'image/png', pngFor('py=1').toString('hex')],
  );
  assert.deepEqual(out.no_live_session, {
    kind: 'NoLiveSessionError',
    status: 404,
    error: 'not_found',
    retry_after: null,
  });
  assert.deepEqual(out.wrong_token, {
    kind: 'ServiceAuthError',
    status: 401,
    error: 'invalid_token',
    retry_after: null,
  });
  assert.deepEqual(out.refused, { kind: 'RelayRefusedError', status: 403, error: 'relay_refused', retry_after: null });
  assert.equal(out.reset, true);
  const keyAfter = wechat.keyOf(openid);
  assert.notEqual(keyAfter, keyBefore);
  assert.equal(out.signed_after_reset.signature, loginSignature(keyAfter, data));
});
