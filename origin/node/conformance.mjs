// Conformance adapter: runs this verifier over a vectors file with the
// clock at the file's `now` and prints one JSON line per case:
// {"name", "valid", "sub"?, "error"?}. origin/conformance/check compares.
import { readFileSync } from 'node:fs'
import { createVerifier } from './lib/wx-identity.mjs'

const v = JSON.parse(readFileSync(process.argv[2], 'utf8'))
const verifiers = new Map() // by pinned appid ("" for none)
const verifierFor = (appid = '') => {
  if (!verifiers.has(appid)) {
    verifiers.set(appid, createVerifier({ audience: v.audience, issuer: v.issuer, fetchJwks: async () => v.jwks, now: () => v.now, appid: appid || undefined }))
  }
  return verifiers.get(appid)
}
for (const c of v.cases) {
  try {
    // A case with "appid": a verifier that requires that appid.
    const id = await verifierFor(c.appid).verify(c.token)
    console.log(JSON.stringify({ name: c.name, valid: true, sub: id.openid }))
  } catch (e) {
    if (!e.code) throw e // a crash, not a verdict
    console.log(JSON.stringify({ name: c.name, valid: false, error: e.message }))
  }
}
for (const c of v.jwks_urls ?? []) {
  try {
    createVerifier({ audience: v.audience, jwksUrl: c.url })
    console.log(JSON.stringify({ name: c.name, valid: true }))
  } catch (e) {
    if (!(e instanceof TypeError)) throw e
    console.log(JSON.stringify({ name: c.name, valid: false, error: e.message }))
  }
}
