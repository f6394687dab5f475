// The service-endpoint client against a local stub of the worker: what it
// sends (path, bearer token, body), what it returns, and which typed error
// each of the worker's refusals becomes. The same client against the real
// worker: tests/integration/origin-service.test.mjs.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import {
  createServiceClient,
  ServiceError,
  NoLiveSessionError,
  ServiceAuthError,
  RelayRefusedError,
  RateLimitedError,
  UnavailableError,
} from '../lib/service.mjs'

const TOKEN = 'service-token-for-the-stub-0123456789abcdef'
let server
let base
const seen = []
let answer = () => ({ status: 500, body: '{}' })

before(async () => {
  server = createServer((req, res) => {
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString()
      seen.push({ method: req.method, url: req.url, authorization: req.headers.authorization, contentType: req.headers['content-type'], body })
      const a = answer(req, body)
      res.writeHead(a.status, { 'content-type': a.contentType ?? 'application/json', ...(a.headers ?? {}) })
      res.end(a.body)
    })
  })
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  base = `http://127.0.0.1:${server.address().port}`
})
after(() => server.close())

const client = () => createServiceClient({ baseUrl: base, token: TOKEN })
const refusal = (status, error, headers = {}, extra = {}) => () => ({
  status,
  headers: { 'x-wx-edge-error': error, ...headers },
  body: JSON.stringify({ error, message: `the stub says ${error}`, ...extra }),
})

test('each call posts to its endpoint with the bearer token and returns the answer', async () => {
  seen.length = 0
  answer = (req) => {
    if (req.url.endsWith('/session-key/check')) return { status: 200, body: '{"valid":false}' }
    if (req.url.endsWith('/session-key/reset')) return { status: 200, body: '{"reset":true}' }
    if (req.url.endsWith('/sign')) return { status: 200, body: '{"signature":"ab12","sig_method":"hmac_sha256"}' }
    if (req.url.endsWith('/decrypt')) return { status: 200, body: '{"data":{"openGId":"g1","watermark":{"appid":"wx1","timestamp":1}}}' }
    return { status: 404, body: '{}' }
  }
  const c = client()
  assert.equal(await c.checkSessionKey('oUser_1-x'), false)
  assert.equal(await c.resetSessionKey('oUser_1-x'), true)
  assert.deepEqual(await c.sign('oUser_1-x', 'payload "data"'), { signature: 'ab12', sig_method: 'hmac_sha256' })
  assert.deepEqual(await c.decrypt('oUser_1-x', { encryptedData: 'ZW5j', iv: 'aXY=' }), { openGId: 'g1', watermark: { appid: 'wx1', timestamp: 1 } })
  assert.deepEqual(
    seen.map((s) => [s.method, s.url, s.authorization]),
    [
      ['POST', '/auth/service/users/oUser_1-x/session-key/check', `Bearer ${TOKEN}`],
      ['POST', '/auth/service/users/oUser_1-x/session-key/reset', `Bearer ${TOKEN}`],
      ['POST', '/auth/service/users/oUser_1-x/sign', `Bearer ${TOKEN}`],
      ['POST', '/auth/service/users/oUser_1-x/decrypt', `Bearer ${TOKEN}`],
    ],
  )
  assert.deepEqual(JSON.parse(seen[2].body), { data: 'payload "data"' })
  assert.equal(seen[2].contentType, 'application/json')
  assert.deepEqual(JSON.parse(seen[3].body), { encryptedData: 'ZW5j', iv: 'aXY=' })
})

test('the worker\'s refusals become typed errors with error, status and retryAfter', async () => {
  const c = client()
  const cases = [
    [refusal(404, 'not_found'), NoLiveSessionError, 404, 'not_found', null],
    [refusal(401, 'invalid_token'), ServiceAuthError, 401, 'invalid_token', null],
    [refusal(429, 'rate_limited', { 'retry-after': '60' }), RateLimitedError, 429, 'rate_limited', 60],
    [refusal(503, 'store_unavailable', { 'retry-after': '2' }), UnavailableError, 503, 'store_unavailable', 2],
    [refusal(502, 'wechat_unavailable', {}, { wechat_errcode: -1 }), UnavailableError, 502, 'wechat_unavailable', null],
    [refusal(400, 'decrypt_failed'), ServiceError, 400, 'decrypt_failed', null],
  ]
  for (const [a, Kind, status, error, retryAfter] of cases) {
    answer = a
    const err = await c.decrypt('oUser1', { encryptedData: 'x', iv: 'y' }).then(
      () => assert.fail('resolved'),
      (e) => e,
    )
    assert.ok(err instanceof Kind, `${error}: ${err.name}`)
    assert.ok(err instanceof ServiceError)
    assert.deepEqual([err.status, err.error, err.retryAfter], [status, error, retryAfter])
    assert.equal(err.message, `the stub says ${error}`)
  }
  answer = refusal(502, 'wechat_unavailable', {}, { wechat_errcode: 40013 })
  const err = await c.checkSessionKey('oUser1').catch((e) => e)
  assert.equal(err.wechatErrcode, 40013)
  // A 200 without the expected shape is not a silent "true".
  answer = () => ({ status: 200, body: '{"valid":"yes"}' })
  assert.equal(await c.checkSessionKey('oUser1'), false)
})

test('relay passes WeChat\'s answer through, query and body included, and never throws on WeChat\'s errcode', async () => {
  seen.length = 0
  answer = () => ({ status: 200, contentType: 'application/json; encoding=utf-8', body: '{"errcode":87014,"errmsg":"risky content"}' })
  const c = client()
  const r = await c.relay('wxa/msg_sec_check', { json: { content: 'hi' }, query: { lang: 'zh_CN' } })
  assert.equal(r.status, 200)
  assert.equal(r.contentType, 'application/json; encoding=utf-8')
  assert.deepEqual(r.json(), { errcode: 87014, errmsg: 'risky content' })
  assert.deepEqual([seen[0].method, seen[0].url, seen[0].contentType, seen[0].body], ['POST', '/auth/service/wechat/wxa/msg_sec_check?lang=zh_CN', 'application/json', '{"content":"hi"}'])
  // Binary answers (wxacode) come back as bytes.
  answer = () => ({ status: 200, contentType: 'image/png', body: Buffer.from([0x89, 0x50, 0x4e, 0x47]) })
  const img = await c.relay('wxa/getwxacodeunlimit', { json: { scene: 'a=1' } })
  assert.deepEqual([...img.body], [0x89, 0x50, 0x4e, 0x47])
  // GET without a body.
  answer = () => ({ status: 200, body: '{"errcode":0}' })
  await c.relay('cgi-bin/openapi/quota/get', { method: 'GET' })
  assert.deepEqual([seen.at(-1).method, seen.at(-1).body], ['GET', ''])
  answer = refusal(403, 'relay_refused')
  await assert.rejects(c.relay('wxa/other', { json: {} }), RelayRefusedError)
})

test('paths, openids and URLs that could be abused are refused before anything is sent', async () => {
  seen.length = 0
  const c = client()
  for (const p of ['/cgi-bin/token', '../admin', 'wxa/../../auth/admin/users/x', 'wxa/./x', 'wxa//x', 'wxa/x?access_token=mine', 'wxa/%2e%2e', 'wxa/x#f', '']) {
    await assert.rejects(c.relay(p), TypeError, p)
  }
  for (const o of ['', '../admin', 'a/b', 'a?b', 'a%2f', 'x'.repeat(129), 42]) {
    await assert.rejects(c.sign(o, 'd'), TypeError, String(o))
  }
  await assert.rejects(c.sign('oUser1', { not: 'a string' }), TypeError)
  await assert.rejects(c.decrypt('oUser1', { encryptedData: 'x' }), TypeError)
  assert.equal(seen.length, 0)
  assert.throws(() => createServiceClient({ baseUrl: 'http://edge.example.com', token: TOKEN }), /https/)
  assert.throws(() => createServiceClient({ baseUrl: 'https://edge.example.com?x=1', token: TOKEN }), /query/)
  assert.throws(() => createServiceClient({ baseUrl: 'https://edge.example.com' }), /token/)
  assert.doesNotThrow(() => createServiceClient({ baseUrl: 'https://edge.example.com/', token: TOKEN }))
})
