// The Node verifier: the conformance vectors, the JWKS cache's refetch
// floor with a fake fetcher and clock, and the Express, Koa and Egg.js
// middleware.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { createVerifier, JwksCache, IdentityError } from '../lib/wx-identity.mjs'
import { wxIdentityExpress, wxIdentityKoa } from '../lib/middleware.mjs'

const V = JSON.parse(readFileSync(new URL('../../conformance/vectors.json', import.meta.url), 'utf8'))
const byName = (n) => {
  const c = V.cases.find((c) => c.name === n)
  assert.ok(c, `no case ${n}`)
  return c
}
const WORKER = byName('worker assertion, as captured from the worker')
const ROTATED = byName('signed by the rotated-in key (second key in the JWKS)')
const workerKid = JSON.parse(Buffer.from(WORKER.token.split('.')[0], 'base64url')).kid
const rotatedKid = JSON.parse(Buffer.from(ROTATED.token.split('.')[0], 'base64url')).kid
const jwksWith = (...kids) => ({ keys: V.jwks.keys.filter((k) => kids.includes(k.kid)) })

const verifierAt = (now, fetchJwks = async () => V.jwks, more = {}) =>
  createVerifier({ audience: V.audience, issuer: V.issuer, fetchJwks, now: () => now, ...more })

test('every conformance case gets its verdict and sub', async () => {
  for (const c of V.cases) {
    const v = verifierAt(V.now, undefined, { appid: c.appid }) // a case with "appid": the verifier requires it
    const got = await v.verify(c.token).then(
      (id) => ({ valid: true, sub: id.openid }),
      (e) => {
        assert.ok(e instanceof IdentityError, `${c.name}: ${e}`)
        return { valid: false }
      },
    )
    assert.equal(got.valid, c.valid, c.name)
    if (c.valid) assert.equal(got.sub, c.sub, c.name)
  }
})

test("the worker's assertion becomes a typed identity", async () => {
  const id = await verifierAt(V.now).verify(WORKER.token)
  const claims = JSON.parse(Buffer.from(WORKER.token.split('.')[1], 'base64url'))
  assert.deepEqual(id, {
    openid: claims.sub,
    unionid: claims.unionid,
    appid: claims.appid,
    phone: '13800138000',
    phoneCountry: '86',
    jti: claims.jti,
    expiresAt: claims.exp,
  })
  assert.match(id.unionid, /^u/)
  assert.match(id.appid, /^wx/)
})

test('the clock decides expiry: the same token expires once now passes exp + leeway', async () => {
  const { exp } = JSON.parse(Buffer.from(WORKER.token.split('.')[1], 'base64url'))
  await verifierAt(exp + 29).verify(WORKER.token)
  await assert.rejects(verifierAt(exp + 30).verify(WORKER.token), { code: 'invalid_identity' })
  await assert.rejects(verifierAt(exp + 10, undefined, { leeway: 5 }).verify(WORKER.token), { code: 'invalid_identity' })
})

/** A fake JWKS endpoint: counts fetches, serves `doc`, or fails. */
function fakeFetcher(doc) {
  const f = async () => {
    f.calls++
    if (f.fail) throw new Error('worker unreachable')
    return f.doc
  }
  Object.assign(f, { calls: 0, doc, fail: false })
  return f
}

test('JWKS cache: one fetch for known kids, at most one refetch per 30 s for unknown ones', async () => {
  let t = 1000
  const fetchJwks = fakeFetcher(jwksWith(workerKid))
  const cache = new JwksCache({ fetchJwks, now: () => t })
  assert.ok(await cache.get(workerKid))
  assert.ok(await cache.get(workerKid))
  assert.equal(fetchJwks.calls, 1)

  t += 10 // a forged kid within the floor: no fetch
  assert.equal(await cache.get('forged-1'), undefined)
  assert.equal(await cache.get('forged-2'), undefined)
  assert.equal(fetchJwks.calls, 1)

  t += 20 // 30 s after the last fetch: one refetch, then the floor again
  assert.equal(await cache.get('forged-3'), undefined)
  assert.equal(await cache.get('forged-4'), undefined)
  assert.equal(fetchJwks.calls, 2)

  // A rotation: the worker now publishes the new key too.
  fetchJwks.doc = jwksWith(rotatedKid, workerKid)
  t += 29
  assert.equal(await cache.get(rotatedKid), undefined, 'still within the floor')
  t += 1
  assert.ok(await cache.get(rotatedKid))
  assert.ok(await cache.get(workerKid))
  assert.equal(fetchJwks.calls, 3)
})

test('JWKS cache: concurrent unknown kids share one fetch', async () => {
  const fetchJwks = fakeFetcher(jwksWith(workerKid))
  const cache = new JwksCache({ fetchJwks, now: () => 0 })
  const got = await Promise.all([1, 2, 3, 4, 5].map(() => cache.get(workerKid)))
  assert.ok(got.every(Boolean))
  assert.equal(fetchJwks.calls, 1)
})

test('JWKS cache: refetches after maxAge, keeps the old keys if that fails, drops a key the JWKS no longer has', async () => {
  let t = 0
  const fetchJwks = fakeFetcher(jwksWith(workerKid))
  const cache = new JwksCache({ fetchJwks, now: () => t, maxAge: 600 })
  await cache.get(workerKid)
  t = 599
  await cache.get(workerKid)
  assert.equal(fetchJwks.calls, 1)
  t = 600
  fetchJwks.fail = true
  assert.ok(await cache.get(workerKid), 'a failed refresh keeps the known key')
  assert.equal(fetchJwks.calls, 2)
  t = 630
  fetchJwks.fail = false
  fetchJwks.doc = jwksWith(rotatedKid) // the worker key was retired
  assert.equal(await cache.get(workerKid), undefined)
  assert.equal(fetchJwks.calls, 3)
})

test('JWKS cache: never fetched is jwks_unavailable, and the floor holds for failures too', async () => {
  let t = 0
  const fetchJwks = fakeFetcher(V.jwks)
  fetchJwks.fail = true
  const errors = []
  const cache = new JwksCache({ fetchJwks, now: () => t, onError: (e) => errors.push(e.message) })
  await assert.rejects(cache.get(workerKid), { code: 'jwks_unavailable' })
  t = 29
  await assert.rejects(cache.get(workerKid), { code: 'jwks_unavailable' })
  assert.equal(fetchJwks.calls, 1)
  assert.deepEqual(errors, ['worker unreachable'])
  fetchJwks.fail = false
  t = 30
  assert.ok(await cache.get(workerKid))
})

test('a rotation through verify(): the new key is picked up on its first unknown kid', async () => {
  let t = V.now
  const fetchJwks = fakeFetcher(jwksWith(workerKid))
  const v = createVerifier({ audience: V.audience, fetchJwks, now: () => t })
  await v.verify(WORKER.token)
  await assert.rejects(v.verify(ROTATED.token), { code: 'invalid_identity' })
  fetchJwks.doc = jwksWith(rotatedKid, workerKid)
  await assert.rejects(v.verify(ROTATED.token), { code: 'invalid_identity' }, 'within the floor')
  t += 30
  assert.equal((await v.verify(ROTATED.token)).openid, ROTATED.sub)
  assert.equal(fetchJwks.calls, 2)
})

test('the JWKS URL: https, or http to a loopback host only (every case of the vectors)', () => {
  assert.ok(V.jwks_urls.length > 0)
  for (const c of V.jwks_urls) {
    if (c.valid) assert.doesNotThrow(() => createVerifier({ audience: V.audience, jwksUrl: c.url }), c.name)
    else assert.throws(() => createVerifier({ audience: V.audience, jwksUrl: c.url }), /https|absolute/, c.name)
  }
})

test('exp - iat is capped at the worker\'s 2 minutes (maxLifetime to allow more); appid pinned on request', async () => {
  const long = byName("lifetime 121 s: longer than the worker's 2 minutes").token
  await assert.rejects(verifierAt(V.now).verify(long), /lifetime/)
  await verifierAt(V.now, undefined, { maxLifetime: 300 }).verify(long)
  const other = byName("appid pinned: another mini-program's assertion").token
  await verifierAt(V.now).verify(other) // not pinned
  assert.equal((await verifierAt(V.now, undefined, { appid: 'wx2222222222222222' }).verify(other)).appid, 'wx2222222222222222')
  await assert.rejects(verifierAt(V.now, undefined, { appid: 'wx2222222222222222' }).verify(WORKER.token), /appid/)
})

test('JWKS cache: a slow refetch stalls no caller whose kid is cached; an unknown kid waits for that one fetch', async () => {
  let t = 0
  let release
  let calls = 0
  const fetchJwks = async () => {
    calls++
    if (calls === 1) return jwksWith(workerKid)
    await new Promise((r) => { release = r }) // a slow JWKS server
    return jwksWith(workerKid, rotatedKid)
  }
  const cache = new JwksCache({ fetchJwks, now: () => t })
  assert.ok(await cache.get(workerKid))
  t = 300 // the cache has aged: the next unknown kid or stale lookup refetches
  const rotated = cache.get(rotatedKid) // starts the refetch, which hangs
  await new Promise((r) => setImmediate(r))
  assert.equal(calls, 2)
  const pending = Symbol('pending')
  const cached = await Promise.race([cache.get(workerKid), new Promise((r) => setTimeout(() => r(pending), 200))])
  assert.notEqual(cached, pending, 'a verification with a cached kid waited for the JWKS fetch')
  assert.ok(cached)
  const second = cache.get(rotatedKid)
  const early = await Promise.race([second, new Promise((r) => setTimeout(() => r(pending), 50))])
  assert.equal(early, pending, 'an unknown kid did not wait for the fetch in flight')
  release()
  assert.ok(await rotated)
  assert.ok(await second)
  assert.equal(calls, 2)
})

test('createVerifier insists on an audience and a JWKS source', () => {
  assert.throws(() => createVerifier({ jwksUrl: 'https://edge.example.com/.well-known/jwks.json' }), /audience/)
  assert.throws(() => createVerifier({ audience: V.audience }), /jwksUrl/)
})

// ---------------------------------------------------------------- middleware

/** A node:http-like response that records what was sent. */
function fakeRes() {
  return {
    statusCode: 200,
    headers: {},
    setHeader(k, v) { this.headers[k.toLowerCase()] = v },
    end(body) { this.body = body; this.ended = true },
  }
}

async function express(mw, headers) {
  const req = { headers }
  const res = fakeRes()
  let nextCalls = 0
  let nextErr
  await new Promise((resolve) => {
    res.end = (body) => { res.body = body; resolve() }
    mw(req, res, (e) => { nextCalls++; nextErr = e; resolve() })
  })
  return { req, res, nextCalls, nextErr, json: res.body && JSON.parse(res.body) }
}

test('Express middleware: req.wxIdentity on success, 401 without or with a bad assertion', async () => {
  const mw = wxIdentityExpress({ verifier: verifierAt(V.now) })
  const ok = await express(mw, { 'x-wx-identity': WORKER.token })
  assert.equal(ok.nextCalls, 1)
  assert.equal(ok.nextErr, undefined)
  assert.equal(ok.req.wxIdentity.openid, WORKER.sub)

  const none = await express(mw, { 'x-wx-openid': WORKER.sub })
  assert.equal(none.nextCalls, 0)
  assert.equal(none.res.statusCode, 401)
  assert.equal(none.json.error, 'missing_identity')
  assert.equal(none.req.wxIdentity, undefined)

  const forged = await express(mw, { 'x-wx-identity': byName('tampered payload: another openid, original signature').token })
  assert.equal(forged.res.statusCode, 401)
  assert.equal(forged.json.error, 'invalid_identity')
  assert.equal(forged.res.headers['content-type'], 'application/json')
})

test('Express middleware: optional lets a request without the header through, not a bad one', async () => {
  const mw = wxIdentityExpress({ verifier: verifierAt(V.now), optional: true })
  const none = await express(mw, {})
  assert.equal(none.nextCalls, 1)
  assert.equal(none.req.wxIdentity, null)
  const bad = await express(mw, { 'x-wx-identity': byName('alg none, with a signature segment').token })
  assert.equal(bad.res.statusCode, 401)
})

test('Express middleware: 503 while the JWKS cannot be fetched', async () => {
  const mw = wxIdentityExpress({ verifier: verifierAt(V.now, async () => { throw new Error('down') }) })
  const r = await express(mw, { 'x-wx-identity': WORKER.token })
  assert.equal(r.res.statusCode, 503)
  assert.equal(r.json.error, 'jwks_unavailable')
})

/** A Koa-like ctx (also what Egg.js passes). */
function fakeCtx(headers) {
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]))
  return { state: {}, status: 404, body: undefined, get: (name) => lower[name.toLowerCase()] ?? '' }
}

test('Koa middleware: ctx.state.wxIdentity on success, 401 otherwise', async () => {
  const mw = wxIdentityKoa({ verifier: verifierAt(V.now) })
  const ctx = fakeCtx({ 'X-WX-Identity': WORKER.token })
  let ran = 0
  await mw(ctx, async () => { ran++ })
  assert.equal(ran, 1)
  assert.equal(ctx.state.wxIdentity.openid, WORKER.sub)

  const bad = fakeCtx({ 'X-WX-Identity': byName('wrong aud: another origin').token })
  await mw(bad, async () => { ran++ })
  assert.equal(ran, 1)
  assert.equal(bad.status, 401)
  assert.equal(bad.body.error, 'invalid_identity')
})

test('Egg.js middleware (CommonJS): ctx.state.wxIdentity, 401, optional, 503', async () => {
  const require = createRequire(import.meta.url)
  const factory = require('../middleware/wx_identity.js')
  const warnings = []
  const app = { logger: { warn: (...a) => warnings.push(a) } }
  let ran = 0
  const next = async () => { ran++ }

  const mw = factory({ verifier: verifierAt(V.now) }, app)
  const ctx = fakeCtx({ 'X-WX-Identity': WORKER.token })
  await mw(ctx, next)
  assert.equal(ran, 1)
  assert.equal(ctx.state.wxIdentity.openid, WORKER.sub)
  assert.equal(ctx.state.wxIdentity.phone, '13800138000')

  const missing = fakeCtx({ 'X-WX-OpenID': WORKER.sub })
  await mw(missing, next)
  assert.equal(ran, 1)
  assert.equal(missing.status, 401)
  assert.equal(missing.body.error, 'missing_identity')

  const optional = factory({ verifier: verifierAt(V.now), optional: true }, app)
  const anon = fakeCtx({})
  await optional(anon, next)
  assert.equal(ran, 2)
  assert.equal(anon.state.wxIdentity, null)

  // Built from options, as config.wxIdentity would be, with a JWKS that is down.
  const down = factory({ audience: V.audience, fetchJwks: async () => { throw new Error('down') } }, app)
  const c = fakeCtx({ 'X-WX-Identity': WORKER.token })
  await down(c, next)
  assert.equal(c.status, 503)
  assert.equal(c.body.error, 'jwks_unavailable')
  assert.equal(warnings.length, 1)
})
