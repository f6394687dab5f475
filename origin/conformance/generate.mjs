// Regenerates vectors.json from the real worker:
//
//   scripts/build          # once, for build/
//   PATH=$PWD/node_modules/.bin:$PATH node origin/conformance/generate.mjs > origin/conformance/vectors.json
//
// It runs the built worker in workerd (Miniflare, tests/support/stack.mjs)
// with a fixed, test-only IDENTITY_KEY and ORIGIN_URL https://api.example.com
// (answered here through Miniflare's outbound hook), logs a user in through
// the WeChat simulator, binds a phone, makes one proxied request and keeps
// the X-WX-Identity the origin received and the worker's JWKS. Every other
// case is derived from that assertion with node:crypto: re-signed with the
// same key (or another one), or broken in one specific way.
//
// The keys below are derived from public strings: they exist only for these
// vectors and must never sign anything real.
import { createHash, createHmac, createPrivateKey, createPublicKey, generateKeyPairSync, sign } from 'node:crypto'
import { Response, fetch as mfFetch } from 'miniflare'
import { startStack, call, login, bearer } from '../../tests/support/stack.mjs'

const AUDIENCE = 'https://api.example.com'
const ISSUER = 'wx-edge'
const TYP = 'wx-identity+jwt'

// ------------------------------------------------------------------ keys

const seedOf = (label) => createHash('sha256').update(`wx-edge conformance vectors, test only: ${label}`).digest()
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')

function ed25519(label, extra = {}) {
  const seed = seedOf(label)
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' })
  const { x } = createPublicKey(privateKey).export({ format: 'jwk' })
  const kid = createHash('sha256').update(`{"crv":"Ed25519","kty":"OKP","x":"${x}"}`).digest('base64url')
  return { seed, privateKey, kid, jwk: { kty: 'OKP', crv: 'Ed25519', x, kid, alg: 'EdDSA', use: 'sig', ...extra } }
}

const WORKER = ed25519('the worker key')      // IDENTITY_KEY of the captured worker
const ROTATED_IN = ed25519('the next key')    // published alongside it: a rotation in progress
const RETIRED = ed25519('a retired key')      // no longer in the JWKS
const ATTACKER = ed25519('an attacker key')
const ENC_ONLY = ed25519('a key marked use=enc', { use: 'enc' })

// ------------------------------------------------------------ capture

const captured = []
const stack = await startStack({
  vars: { IDENTITY_KEY: WORKER.seed.toString('base64'), ORIGIN_URL: AUDIENCE },
  miniflare: {
    // The origin is "https://api.example.com": answer it here; everything
    // else (the WeChat simulator) goes out as usual.
    async outboundService(request) {
      if (new URL(request.url).origin === AUDIENCE) {
        captured.push(Object.fromEntries(request.headers))
        return new Response('{"ok":true}', { headers: { 'content-type': 'application/json' } })
      }
      return mfFetch(request)
    },
  },
})
let real, workerJwks
try {
  const pair = await login(stack, 'conformance.1')
  const bound = await call(stack, 'POST', '/auth/phone', { body: { code: 'phone-13800138000' }, headers: bearer(pair.access_token) })
  if (bound.status !== 200) throw new Error(`phone binding failed: ${bound.status} ${bound.text}`)
  const r = await call(stack, 'GET', '/api/profile', { headers: bearer(bound.json.access_token) })
  if (r.status !== 200 || captured.length !== 1) throw new Error(`proxied request failed: ${r.status} ${r.text}`)
  real = captured[0]['x-wx-identity']
  if (!real) throw new Error('the worker sent no X-WX-Identity')
  workerJwks = (await call(stack, 'GET', '/.well-known/jwks.json')).json
} finally {
  await stack.close()
}

// ------------------------------------------------------------- helpers

const b64 = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url')
const parts = (t) => t.split('.')
const decode = (seg) => JSON.parse(Buffer.from(seg, 'base64url').toString('utf8'))

const realHeader = decode(parts(real)[0])
const realClaims = decode(parts(real)[1])
const check = (ok, what) => { if (!ok) throw new Error(`unexpected worker assertion: ${what}`) }
check(realHeader.alg === 'EdDSA' && realHeader.typ === TYP && realHeader.kid === WORKER.kid, JSON.stringify(realHeader))
check(realClaims.iss === ISSUER && realClaims.aud === AUDIENCE && realClaims.phone === '13800138000', JSON.stringify(realClaims))
check(workerJwks.keys.length === 1 && workerJwks.keys[0].kid === WORKER.kid && workerJwks.keys[0].x === WORKER.jwk.x, JSON.stringify(workerJwks))

const NOW = realClaims.iat + 5
const OPENID = realClaims.sub
// The worker's assertion lifetime (IDENTITY_TTL): every verifier refuses a
// longer exp - iat by default.
const MAX_LIFETIME = 120
check(realClaims.exp - realClaims.iat === MAX_LIFETIME, `lifetime ${realClaims.exp - realClaims.iat} s, not ${MAX_LIFETIME}`)
const APPID = realClaims.appid
check(typeof APPID === 'string' && APPID.length > 0, 'no appid claim')
const OTHER_APPID = 'wx2222222222222222'
check(APPID !== OTHER_APPID, 'the captured appid is the "other" one')

/** A JWS over header/payload (objects, or raw strings used as-is), EdDSA with `key`. */
function jws(header, payload, key = WORKER.privateKey) {
  const input = `${b64(header)}.${b64(payload)}`
  return `${input}.${sign(null, Buffer.from(input), key).toString('base64url')}`
}
const hdr = (extra = {}, kid = WORKER.kid) => ({ alg: 'EdDSA', typ: TYP, kid, ...extra })
let jtiN = 0
/** The captured claims, re-timed to NOW (2-minute life, like the worker's), with changes. */
function claims(changes = {}) {
  const c = { ...realClaims, iat: NOW - 5, exp: NOW + 115, jti: `conformance-${++jtiN}`, ...changes }
  for (const [k, v] of Object.entries(c)) if (v === undefined) delete c[k]
  return c
}
const hmac = (header, payload, secret) => {
  const input = `${b64(header)}.${b64(payload)}`
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`
}

// Keys that a JWKS may hold but that must never verify an identity.
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const x25519 = generateKeyPairSync('x25519')
const HMAC_SECRET = 'not-a-secret-conformance-hmac-key-0123456789'
const extraKeys = [
  { ...rsa.publicKey.export({ format: 'jwk' }), kid: 'rsa-2048', alg: 'RS256', use: 'sig' },
  { ...ec.publicKey.export({ format: 'jwk' }), kid: 'ec-p256', alg: 'ES256', use: 'sig' },
  { ...x25519.publicKey.export({ format: 'jwk' }), kid: 'x25519', use: 'enc' },
  { kty: 'oct', kid: 'hmac', k: Buffer.from(HMAC_SECRET).toString('base64url'), alg: 'HS256' },
  { kty: 'OKP', crv: 'Ed25519', kid: 'broken', x: 'AAAA', alg: 'EdDSA', use: 'sig' },
  ENC_ONLY.jwk,
]

const jwks = { keys: [ROTATED_IN.jwk, ...workerJwks.keys, ...extraKeys] }

// A token whose signature segment contains '-' or '_' (to show the
// standard-alphabet spelling of it): vary jti until one does.
function withUrlSafeCharsInSignature() {
  for (;;) {
    const t = jws(hdr(), claims())
    if (/[-_]/.test(parts(t)[2])) return t
  }
}

const [rh, rp, rs] = parts(real)
const SPKI_PEM = createPublicKey(WORKER.privateKey).export({ format: 'pem', type: 'spki' })
const RAW_PUBLIC = Buffer.from(WORKER.jwk.x, 'base64url')
const minimal = { iss: ISSUER, aud: AUDIENCE, sub: OPENID, iat: NOW - 5, exp: NOW + 115 }

const cases = [
  // ---- valid
  ['worker assertion, as captured from the worker', real, true],
  ['re-signed with the worker key, only the required claims', jws(hdr(), minimal), true],
  ['signed by the rotated-in key (second key in the JWKS)', jws(hdr({}, ROTATED_IN.kid), claims(), ROTATED_IN.privateKey), true],
  ['expired 10 s ago: within the leeway', jws(hdr(), claims({ iat: NOW - 130, exp: NOW - 10 })), true],
  ['issued 10 s in the future: clock skew within the leeway', jws(hdr(), claims({ iat: NOW + 10, exp: NOW + 130 })), true],
  ['numeric dates with fractions', jws(hdr(), claims({ iat: NOW - 5.5, exp: NOW + 114.5 })), true],
  ['no unionid, phone or appid', jws(hdr(), claims({ unionid: undefined, phone: undefined, phone_country: undefined, appid: undefined })), true],

  // ---- time
  ['expired 2 minutes ago', jws(hdr(), claims({ iat: NOW - 240, exp: NOW - 120 })), false],
  ['not yet valid: iat 2 minutes in the future', jws(hdr(), claims({ iat: NOW + 120, exp: NOW + 240 })), false],
  ['nbf 2 minutes in the future', jws(hdr(), claims({ nbf: NOW + 120 })), false],
  ['missing exp', jws(hdr(), claims({ exp: undefined })), false],
  ['missing iat', jws(hdr(), claims({ iat: undefined })), false],
  ['exp as a string', jws(hdr(), claims({ exp: String(NOW + 115) })), false],
  ["lifetime 121 s: longer than the worker's 2 minutes", jws(hdr(), claims({ iat: NOW - 5, exp: NOW + 116 })), false],
  ['lifetime one day', jws(hdr(), claims({ iat: NOW - 5, exp: NOW + 86400 })), false],
  ['lifetime one day, issued long ago and still unexpired', jws(hdr(), claims({ iat: NOW - 86000, exp: NOW + 400 })), false],

  // ---- appid pinned (the case's "appid": the verifier requires that appid)
  ['appid pinned: the worker assertion of that app', real, true, { appid: APPID }],
  ["appid pinned: another mini-program's assertion", jws(hdr(), claims({ appid: OTHER_APPID })), false, { appid: APPID }],
  ['appid pinned: no appid claim', jws(hdr(), claims({ appid: undefined })), false, { appid: APPID }],
  ['appid pinned: appid not a string', jws(hdr(), claims({ appid: 12345 })), false, { appid: APPID }],
  ['appid pinned: same appid in another case', jws(hdr(), claims({ appid: APPID.toUpperCase() })), false, { appid: APPID }],

  // ---- audience, issuer, subject
  ['wrong aud: another origin', jws(hdr(), claims({ aud: 'https://evil.example.com' })), false],
  ['wrong aud: trailing slash', jws(hdr(), claims({ aud: AUDIENCE + '/' })), false],
  ['wrong aud: http instead of https', jws(hdr(), claims({ aud: AUDIENCE.replace('https:', 'http:') })), false],
  ['missing aud', jws(hdr(), claims({ aud: undefined })), false],
  ['wrong iss', jws(hdr(), claims({ iss: 'wx-edge-staging' })), false],
  ['missing iss', jws(hdr(), claims({ iss: undefined })), false],
  ['missing sub', jws(hdr(), claims({ sub: undefined })), false],
  ['empty sub', jws(hdr(), claims({ sub: '' })), false],
  ['sub not a string', jws(hdr(), claims({ sub: 12345 })), false],

  // ---- keys
  ['unknown kid', jws(hdr({}, 'no-such-kid'), claims()), false],
  ['no kid', jws({ alg: 'EdDSA', typ: TYP }, claims()), false],
  ['signed by a retired key no longer in the JWKS', jws(hdr({}, RETIRED.kid), claims(), RETIRED.privateKey), false],
  ["the worker's kid, signed by a retired key", jws(hdr(), claims(), RETIRED.privateKey), false],
  ['the key embedded in the header (jwk), no kid', jws({ alg: 'EdDSA', typ: TYP, jwk: { kty: 'OKP', crv: 'Ed25519', x: ATTACKER.jwk.x } }, claims(), ATTACKER.privateKey), false],
  ["an embedded jwk with the worker's kid, signed by that key", jws(hdr({ jwk: { kty: 'OKP', crv: 'Ed25519', x: ATTACKER.jwk.x } }), claims(), ATTACKER.privateKey), false],
  ['kid of an RSA key in the JWKS (alg EdDSA)', jws(hdr({}, 'rsa-2048'), claims()), false],
  ['kid of a P-256 key in the JWKS (alg EdDSA)', jws(hdr({}, 'ec-p256'), claims()), false],
  ['kid of an X25519 key in the JWKS', jws(hdr({}, 'x25519'), claims()), false],
  ['kid of an Ed25519 key marked use=enc, signed by it', jws(hdr({}, ENC_ONLY.kid), claims(), ENC_ONLY.privateKey), false],
  ['kid of a malformed Ed25519 entry', jws(hdr({}, 'broken'), claims()), false],

  // ---- algorithms
  ['alg none, no signature', `${b64({ alg: 'none', typ: TYP, kid: WORKER.kid })}.${b64(claims())}.`, false],
  ['alg none, with a signature segment', `${b64({ alg: 'none', typ: TYP, kid: WORKER.kid })}.${rp}.${rs}`, false],
  ['alg HS256 keyed with the raw public key bytes', hmac({ alg: 'HS256', typ: TYP, kid: WORKER.kid }, claims(), RAW_PUBLIC), false],
  ['alg HS256 keyed with the public key PEM', hmac({ alg: 'HS256', typ: TYP, kid: WORKER.kid }, claims(), SPKI_PEM), false],
  ['alg HS256 with the oct key of the JWKS', hmac({ alg: 'HS256', typ: TYP, kid: 'hmac' }, claims(), HMAC_SECRET), false],
  ['alg RS256 signed by the RSA key of the JWKS', (() => {
    const input = `${b64({ alg: 'RS256', typ: TYP, kid: 'rsa-2048' })}.${b64(claims())}`
    return `${input}.${sign('sha256', Buffer.from(input), rsa.privateKey).toString('base64url')}`
  })(), false],
  ['alg ES256 signed by the P-256 key of the JWKS', (() => {
    const input = `${b64({ alg: 'ES256', typ: TYP, kid: 'ec-p256' })}.${b64(claims())}`
    return `${input}.${sign('sha256', Buffer.from(input), { key: ec.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`
  })(), false],

  // ---- header
  ['typ JWT', jws(hdr({ typ: 'JWT' }), claims()), false],
  ['no typ', jws({ alg: 'EdDSA', kid: WORKER.kid }, claims()), false],
  ["typ of the worker's access token (at+jwt)", jws(hdr({ typ: 'at+jwt' }), claims()), false],
  ['crit header with an unknown extension', jws(hdr({ crit: ['wx-ext'], 'wx-ext': true }), claims()), false],
  ['header not JSON', jws('not json', claims()), false],

  // ---- integrity
  ['tampered payload: another openid, original signature', `${rh}.${b64({ ...realClaims, sub: 'oSomeoneElse' })}.${rs}`, false],
  ['tampered header: extra member, original signature', `${b64({ ...realHeader, cty: 'x' })}.${rp}.${rs}`, false],
  ['truncated signature', `${rh}.${rp}.${rs.slice(0, -4)}`, false],
  ['payload not JSON', jws(hdr(), 'not json at all'), false],
  ['payload a JSON array', jws(hdr(), '[1,2,3]'), false],

  // ---- encoding
  ['a character outside base64url', `${rh}.${rp.slice(0, 10)}*${rp.slice(11)}.${rs}`, false],
  ['base64 padding on the signature', `${rh}.${rp}.${rs}==`, false],
  ['standard base64 alphabet (+ and /) in the signature', (() => {
    const [h, p, s] = parts(withUrlSafeCharsInSignature())
    return `${h}.${p}.${s.replaceAll('-', '+').replaceAll('_', '/')}`
  })(), false],
  ['four segments', `${real}.${rs}`, false],
  ['five segments (JWE shape)', `${rh}.${rp}.${rs}.${rs}.${rs}`, false],
  ['two segments', `${rh}.${rp}`, false],
  ['empty string', '', false],
]

// Configuration: constructing a verifier with each JWKS URL succeeds or is
// refused. https, or plain http to a loopback host only.
const jwksUrls = [
  ['https URL', 'https://edge.example.com/.well-known/jwks.json', true],
  ['https URL with a port', 'https://edge.example.com:8443/.well-known/jwks.json', true],
  ['http URL of a public host', 'http://edge.example.com/.well-known/jwks.json', false],
  ['http URL of a private address', 'http://10.0.0.7/.well-known/jwks.json', false],
  ['http URL of 128.0.0.1 (not loopback)', 'http://128.0.0.1/.well-known/jwks.json', false],
  ['http URL of a name starting with localhost', 'http://localhost.evil.example/.well-known/jwks.json', false],
  ['http URL of a name starting with 127.0.0.1', 'http://127.0.0.1.evil.example/.well-known/jwks.json', false],
  ['http URL of 127.0.0.1 (loopback)', 'http://127.0.0.1:8787/.well-known/jwks.json', true],
  ['http URL of 127.8.9.10 (loopback)', 'http://127.8.9.10:8787/.well-known/jwks.json', true],
  ['http URL of localhost', 'http://localhost:8787/.well-known/jwks.json', true],
  ['http URL of [::1]', 'http://[::1]:8787/.well-known/jwks.json', true],
  ['ftp URL', 'ftp://edge.example.com/.well-known/jwks.json', false],
  ['no scheme', 'edge.example.com/.well-known/jwks.json', false],
].map(([name, url, valid]) => ({ name: `JWKS URL: ${name}`, url, valid }))

const names = new Set()
for (const { name } of jwksUrls) names.add(name)
for (const [name] of cases) {
  if (names.has(name)) throw new Error(`duplicate case name: ${name}`)
  names.add(name)
}

const out = {
  jwks,
  now: NOW,
  audience: AUDIENCE,
  issuer: ISSUER,
  max_lifetime: MAX_LIFETIME,
  cases: cases.map(([name, token, valid, opts = {}]) => ({ name, token, valid, ...(valid ? { sub: OPENID } : {}), ...opts })),
  jwks_urls: jwksUrls,
}
process.stdout.write(JSON.stringify(out, null, 2) + '\n')
