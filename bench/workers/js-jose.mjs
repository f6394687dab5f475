// The JavaScript reference for a proxied request (issue 20): the
// worker a team would write instead, with `jose`, doing on every request
// what wx-edge's default configuration promises — verify the HS256 access
// token (typ at+jwt, audience = the appid), read the session's KV replica
// (`session:{sid}`: gone = revoked), sign a fresh Ed25519 `X-WX-Identity`
// assertion, and forward with `cache: 'no-store'` and the identity headers.
// No caching of anything between requests. scripts/bench bundles it with
// esbuild (jose included) and seeds its KV with the sessions' replicas.
import { jwtVerify, SignJWT } from 'jose'

let keys

async function init(env) {
  const seed = Uint8Array.from(atob(env.IDENTITY_KEY), (c) => c.charCodeAt(0))
  // PKCS#8 for an Ed25519 seed: a fixed 16-byte prefix, then the seed.
  const prefix = [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]
  const pkcs8 = new Uint8Array([...prefix, ...seed])
  return {
    hmac: new TextEncoder().encode(env.TOKEN_SECRET),
    ed25519: await crypto.subtle.importKey('pkcs8', pkcs8, { name: 'Ed25519' }, false, ['sign']),
    audience: new URL(env.ORIGIN_URL).origin,
  }
}

const refuse = (status, error) => Response.json({ error }, { status })

export default {
  async fetch(request, env) {
    keys ??= await init(env)
    const auth = request.headers.get('authorization') ?? ''
    if (!auth.startsWith('Bearer ')) return refuse(401, 'unauthorized')
    let claims
    try {
      ;({ payload: claims } = await jwtVerify(auth.slice(7), keys.hmac, {
        algorithms: ['HS256'],
        typ: 'at+jwt',
        audience: env.WX_APPID,
      }))
    } catch {
      return refuse(401, 'invalid_token')
    }
    const replica = await env.SESSIONS.get(`session:${claims.sid}`, 'json')
    if (!replica || replica.openid !== claims.sub) return refuse(401, 'session_revoked')
    const identity = await new SignJWT({ appid: env.WX_APPID })
      .setProtectedHeader({ alg: 'EdDSA', typ: 'wx-identity+jwt' })
      .setSubject(claims.sub)
      .setAudience(keys.audience)
      .setJti(crypto.randomUUID())
      .setIssuedAt()
      .setExpirationTime('2m')
      .sign(keys.ed25519)
    const url = new URL(request.url)
    const headers = new Headers(request.headers)
    headers.delete('authorization')
    headers.set('X-WX-OpenID', claims.sub)
    headers.set('X-WX-Identity', identity)
    return fetch(env.ORIGIN_URL + url.pathname + url.search, {
      method: request.method,
      headers,
      body: request.body,
      redirect: 'manual',
      cache: 'no-store',
    })
  },
}
