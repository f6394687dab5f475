// Types of wx-identity.mjs: the X-WX-Identity verifier.

export declare const ISSUER: 'wx-edge'
export declare const TYP: 'wx-identity+jwt'
export declare const HEADER: 'x-wx-identity'
/** The longest exp - iat accepted by default (seconds): the worker's assertions live 2 minutes. */
export declare const MAX_LIFETIME: number

export type IdentityErrorCode = 'missing_identity' | 'invalid_identity' | 'jwks_unavailable'

export declare class IdentityError extends Error {
  constructor(code: IdentityErrorCode, message: string, options?: { cause?: unknown })
  readonly name: 'IdentityError'
  readonly code: IdentityErrorCode
}

/** What a verified assertion says; absent claims are null. */
export interface Identity {
  openid: string
  unionid: string | null
  appid: string | null
  /** purePhoneNumber, when a phone is bound. */
  phone: string | null
  phoneCountry: string | null
  jti: string | null
  /** Unix seconds. */
  expiresAt: number
}

export interface Jwks {
  keys: unknown[]
}

export type JwksFetcher = () => Promise<Jwks | unknown>

/** Throws a TypeError unless `url` is https://, or http:// to a loopback host. */
export declare function checkJwksUrl(url: string): void

/** Fetches a JWKS document from `url` (which must pass checkJwksUrl). */
export declare function httpJwksFetcher(url: string, options?: { timeoutMs?: number }): JwksFetcher

export interface JwksCacheOptions {
  fetchJwks: JwksFetcher
  now?: () => number
  minRefetchInterval?: number
  maxAge?: number
  onError?: (err: unknown) => void
}

export declare class JwksCache {
  constructor(options: JwksCacheOptions)
  get(kid: string): Promise<CryptoKey | Uint8Array | undefined>
}

export interface VerifierOptions {
  /** Your origin exactly as the worker's ORIGIN_URL spells it: scheme://host[:port]. */
  audience: string
  /** https://<worker>/.well-known/jwks.json (or fetchJwks). */
  jwksUrl?: string
  /** Instead of jwksUrl: a file, a test, a custom client. */
  fetchJwks?: JwksFetcher
  issuer?: string
  /** Seconds of clock skew allowed (30). */
  leeway?: number
  /** The clock, Unix seconds. */
  now?: () => number
  minRefetchInterval?: number
  maxAge?: number
  onError?: (err: unknown) => void
  /** If set, the assertion's appid must equal it. */
  appid?: string
  /** Longest exp - iat accepted, seconds (120). */
  maxLifetime?: number
}

export interface Verifier {
  /** Resolves to the identity, or rejects with an IdentityError. */
  verify(token: string | undefined | null): Promise<Identity>
  readonly cache: JwksCache
}

export declare function createVerifier(options: VerifierOptions): Verifier
