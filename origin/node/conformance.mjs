// Conformance adapter: runs this verifier over a vectors file with the
// clock at the file's `now` and prints one JSON line per case:
// {"name", "valid", "sub"?, "error"?}. origin/conformance/check compares.
import { readFileSync } from 'node:fs'
import { createVerifier } from './lib/wx-identity.mjs'

const v = JSON.parse(readFileSync(process.argv[2], 'utf8'))
const verifier = createVerifier({
  audience: v.audience,
  issuer: v.issuer,
  fetchJwks: async () => v.jwks,
  now: () => v.now,
})
for (const c of v.cases) {
  try {
    const id = await verifier.verify(c.token)
    console.log(JSON.stringify({ name: c.name, valid: true, sub: id.openid }))
  } catch (e) {
    if (!e.code) throw e // a crash, not a verdict
    console.log(JSON.stringify({ name: c.name, valid: false, error: e.message }))
  }
}
