// Runs in a fresh project where the packed @wx-edge/origin tarball was
// installed: the package's entry points, the conformance vectors through
// them, and that internals are not reachable.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import * as all from '@wx-edge/origin'
import { createVerifier, IdentityError } from '@wx-edge/origin/verifier'
import { wxIdentityExpress, wxIdentityKoa } from '@wx-edge/origin/middleware'
import { createServiceClient, NoLiveSessionError } from '@wx-edge/origin/service'

const V = JSON.parse(readFileSync(process.argv[2], 'utf8'))
let passed = 0
for (const c of V.cases) {
  const v = createVerifier({ audience: V.audience, fetchJwks: async () => V.jwks, now: () => V.now, appid: c.appid })
  const got = await v.verify(c.token).then(
    (id) => ({ valid: true, sub: id.openid }),
    (e) => {
      assert.ok(e instanceof IdentityError, `${c.name}: ${e}`)
      return { valid: false }
    },
  )
  assert.equal(got.valid, c.valid, c.name)
  if (c.valid) assert.equal(got.sub, c.sub, c.name)
  passed++
}
for (const name of ['createVerifier', 'wxIdentityExpress', 'wxIdentityKoa', 'createServiceClient', 'NoLiveSessionError']) {
  assert.equal(typeof all[name], 'function', `@wx-edge/origin exports ${name}`)
}
assert.equal(typeof wxIdentityExpress({ audience: V.audience, fetchJwks: async () => V.jwks }), 'function')
assert.equal(typeof wxIdentityKoa({ audience: V.audience, fetchJwks: async () => V.jwks }), 'function')
assert.throws(() => createServiceClient({ baseUrl: 'http://edge.example.com', token: 't' }), TypeError)

// The Egg.js middleware is CommonJS, loaded with require() as an Egg app does.
const require = createRequire(import.meta.url)
const egg = require('@wx-edge/origin/egg')
const worker = V.cases.find((c) => c.name === 'worker assertion, as captured from the worker')
const mw = egg({ audience: V.audience, fetchJwks: async () => V.jwks, now: () => V.now })
const ctx = { headers: { 'x-wx-identity': worker.token }, get: (h) => ctx.headers[h] ?? '', state: {}, status: 404 }
let reached = false
await mw(ctx, async () => {
  reached = true
})
assert.ok(reached, 'Egg middleware passes a valid assertion')
assert.equal(ctx.state.wxIdentity.openid, worker.sub)
const bare = { get: () => '', state: {}, status: 404 }
await mw(bare, async () => assert.fail('Egg middleware let a request without an assertion through'))
assert.equal(bare.status, 401)

// Only the exported entry points are reachable.
await assert.rejects(import('@wx-edge/origin/lib/wx-identity.mjs'), { code: 'ERR_PACKAGE_PATH_NOT_EXPORTED' })
console.log(`node package: ${passed}/${V.cases.length} conformance cases through @wx-edge/origin, Express/Koa/Egg entry points load`)
