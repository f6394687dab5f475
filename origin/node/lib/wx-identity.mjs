// Verifies wx-edge's X-WX-Identity assertion with `jose` (npm i jose@6).
//
//   import { createVerifier } from './wx-identity.mjs'
//   const wx = createVerifier({
//     jwksUrl: 'https://edge.example.com/.well-known/jwks.json',
//     audience: 'https://api.example.com',      // your ORIGIN_URL's origin
//     appid: 'wx1111111111111111',              // optional: only this mini-program
//   })
//   const id = await wx.verify(req.headers['x-wx-identity'])
//   // → { openid, unionid, appid, phone, phoneCountry, jti, expiresAt }
//
// Rules (the same in every verifier in origin/, pinned by origin/conformance):
// compact JWS of base64url segments; header alg exactly "EdDSA" (never taken
// from the token otherwise), typ exactly "wx-identity+jwt", a kid, no crit;
// the key is the JWKS entry with that kid, and only an OKP/Ed25519 one;
// iss "wx-edge", aud a string equal to `audience`, sub a non-empty string,
// exp and iat numbers with now < exp + leeway and iat <= now + leeway (nbf
// likewise if present), exp - iat at most maxLifetime (the worker's 2
// minutes), appid equal to `appid` when given. The JWKS URL must be https
// (loopback excepted). The JWKS is cached; an unknown kid (a rotation) or a
// cache older than maxAge refetches it, at most once per minRefetchInterval.
import { jwtVerify, decodeProtectedHeader, importJWK } from 'jose'

export const ISSUER = 'wx-edge'
export const TYP = 'wx-identity+jwt'
export const HEADER = 'x-wx-identity'
const COMPACT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/

/**
 * code: 'missing_identity' (no header), 'invalid_identity' (anything wrong
 * with it) or 'jwks_unavailable' (the JWKS could never be fetched).
 */
export class IdentityError extends Error {
  constructor(code, message, options) {
    super(message, options)
    this.name = 'IdentityError'
    this.code = code
  }
}

const invalid = (why, cause) => new IdentityError('invalid_identity', `X-WX-Identity rejected: ${why}`, { cause })

/**
 * @typedef {object} Identity
 * @property {string} openid
 * @property {string|null} unionid
 * @property {string|null} appid
 * @property {string|null} phone         purePhoneNumber, when bound
 * @property {string|null} phoneCountry
 * @property {string|null} jti
 * @property {number} expiresAt          Unix seconds
 */

/** The longest exp - iat accepted by default: the worker's assertions live 2 minutes (IDENTITY_TTL). */
export const MAX_LIFETIME = 120

/**
 * Throws a TypeError unless `url` is https://, or http:// to a loopback host
 * (127.0.0.0/8, localhost, [::1]: development and tests). Over plain http
 * anyone on the path could hand the verifier their own key.
 */
export function checkJwksUrl(url) {
  let u
  try {
    u = new URL(url)
  } catch {
    throw new TypeError(`the JWKS URL ${JSON.stringify(String(url))} is not an absolute URL`)
  }
  if (u.protocol === 'https:' && u.hostname) return
  const loopback = u.hostname === 'localhost' || u.hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(u.hostname)
  if (u.protocol === 'http:' && loopback) return
  throw new TypeError(`the JWKS URL must be https:// (plain http only for a loopback host), got ${JSON.stringify(String(url))}`)
}

/** Fetches a JWKS document from a URL (5 s timeout); the URL must pass checkJwksUrl. */
export function httpJwksFetcher(url, { timeoutMs = 5000 } = {}) {
  checkJwksUrl(url)
  return async () => {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: 'application/json' } })
    if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`)
    return res.json()
  }
}

/** The usable keys of a JWKS: OKP/Ed25519 public keys with a kid, by kid. */
async function ed25519Keys(jwks) {
  const keys = new Map()
  for (const k of Array.isArray(jwks?.keys) ? jwks.keys : []) {
    if (k?.kty !== 'OKP' || k.crv !== 'Ed25519' || typeof k.kid !== 'string' || !k.kid) continue
    if (k.use !== undefined && k.use !== 'sig') continue
    if (k.alg !== undefined && k.alg !== 'EdDSA') continue
    if (typeof k.x !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(k.x)) continue
    try {
      // Only the public members: a stray "d" must not turn this into a private key.
      keys.set(k.kid, await importJWK({ kty: 'OKP', crv: 'Ed25519', x: k.x }, 'EdDSA'))
    } catch {
      // an unusable entry is skipped, not fatal for the others
    }
  }
  return keys
}

/**
 * The JWKS, cached. `get(kid)` refetches when the kid is unknown or the cache
 * is older than `maxAge`, but never more than once per `minRefetchInterval`
 * seconds (failed attempts count), so forged kids cannot hammer the worker.
 * A failed refetch keeps the keys already known. One fetch is in flight at
 * a time; a caller whose kid is cached gets it at once (even while a refetch
 * for age is under way), and only a caller that needs a kid the cache lacks
 * waits for the fetch in flight.
 */
export class JwksCache {
  #keys = new Map()
  #fetchedAt = -Infinity
  #attemptedAt = -Infinity
  #inflight = null
  #everFetched = false

  constructor({ fetchJwks, now = () => Date.now() / 1000, minRefetchInterval = 30, maxAge = 300, onError = () => {} }) {
    if (typeof fetchJwks !== 'function') throw new TypeError('fetchJwks must be a function')
    Object.assign(this, { fetchJwks, now, minRefetchInterval, maxAge, onError })
  }

  async get(kid) {
    const t = this.now()
    const fresh = t - this.#fetchedAt < this.maxAge
    if (fresh && this.#keys.has(kid)) return this.#keys.get(kid)
    // A refetch for age is under way: the cached key stands meanwhile.
    if (this.#inflight && this.#keys.has(kid)) return this.#keys.get(kid)
    if (this.#inflight) await this.#inflight
    else if (t - this.#attemptedAt >= this.minRefetchInterval) await this.#refresh(t)
    if (!this.#everFetched) throw new IdentityError('jwks_unavailable', 'the JWKS could not be fetched')
    return this.#keys.get(kid)
  }

  #refresh(t) {
    this.#attemptedAt = t
    this.#inflight = (async () => {
      try {
        this.#keys = await ed25519Keys(await this.fetchJwks())
        this.#fetchedAt = this.now()
        this.#everFetched = true
      } catch (e) {
        this.onError(e)
      } finally {
        this.#inflight = null
      }
    })()
    return this.#inflight
  }
}

const isNum = (v) => typeof v === 'number' && Number.isFinite(v)
const optString = (v) => (typeof v === 'string' ? v : null)

/**
 * @param {object} o
 * @param {string} o.audience        your origin, exactly as the worker's ORIGIN_URL origin (scheme://host[:port])
 * @param {string} [o.jwksUrl]       https://<worker>/.well-known/jwks.json
 * @param {() => Promise<object>} [o.fetchJwks]  instead of jwksUrl (tests, a file, a custom client)
 * @param {string} [o.issuer='wx-edge']
 * @param {number} [o.leeway=30]     seconds of clock skew allowed
 * @param {() => number} [o.now]     the clock, Unix seconds
 * @param {string} [o.appid]         if set, the assertion's appid must equal it (one mini-program of several)
 * @param {number} [o.maxLifetime=120]  longest exp - iat accepted, seconds (the worker's assertions live 2 minutes)
 */
export function createVerifier({ audience, jwksUrl, fetchJwks, issuer = ISSUER, leeway = 30, now = () => Date.now() / 1000, minRefetchInterval = 30, maxAge = 300, onError, appid, maxLifetime = MAX_LIFETIME } = {}) {
  if (typeof audience !== 'string' || !audience) throw new TypeError('audience is required (your origin, e.g. https://api.example.com)')
  if (!fetchJwks && !jwksUrl) throw new TypeError('jwksUrl (or fetchJwks) is required')
  if (!fetchJwks) checkJwksUrl(jwksUrl)
  if (appid !== undefined && appid !== null && (typeof appid !== 'string' || !appid)) throw new TypeError('appid, when given, is a non-empty string')
  const cache = new JwksCache({ fetchJwks: fetchJwks ?? httpJwksFetcher(jwksUrl), now, minRefetchInterval, maxAge, onError })

  /** @returns {Promise<Identity>} */
  async function verify(token) {
    if (token === undefined || token === null || token === '') throw new IdentityError('missing_identity', 'X-WX-Identity is missing')
    if (typeof token !== 'string' || !COMPACT.test(token)) throw invalid('not a compact JWS')
    let header
    try {
      header = decodeProtectedHeader(token)
    } catch (e) {
      throw invalid('unreadable header', e)
    }
    if (header.alg !== 'EdDSA') throw invalid('alg must be EdDSA')
    if (header.typ !== TYP) throw invalid(`typ must be ${TYP}`)
    if (typeof header.kid !== 'string' || !header.kid) throw invalid('no kid')
    if ('crit' in header) throw invalid('crit is not supported')
    const key = await cache.get(header.kid)
    if (!key) throw invalid('kid not in the JWKS')
    const t = now()
    let claims
    try {
      ;({ payload: claims } = await jwtVerify(token, key, {
        algorithms: ['EdDSA'],
        typ: TYP,
        issuer,
        audience,
        requiredClaims: ['iss', 'aud', 'sub', 'exp', 'iat'],
        clockTolerance: leeway,
        currentDate: new Date(t * 1000),
      }))
    } catch (e) {
      throw invalid(e.message, e)
    }
    // What jose leaves to us: aud must be a string, iat not in the future,
    // sub a non-empty string.
    if (typeof claims.aud !== 'string') throw invalid('aud must be a string')
    if (!isNum(claims.exp) || !isNum(claims.iat)) throw invalid('exp and iat must be numbers')
    if (claims.iat > t + leeway) throw invalid('iat is in the future')
    if (claims.exp - claims.iat > maxLifetime) throw invalid(`lifetime (exp - iat) longer than ${maxLifetime} s`)
    if (appid && claims.appid !== appid) throw invalid('wrong appid')
    if (typeof claims.sub !== 'string' || !claims.sub) throw invalid('sub must be the openid')
    return {
      openid: claims.sub,
      unionid: optString(claims.unionid),
      appid: optString(claims.appid),
      phone: optString(claims.phone),
      phoneCountry: optString(claims.phone_country),
      jti: optString(claims.jti),
      expiresAt: claims.exp,
    }
  }

  return { verify, cache }
}
