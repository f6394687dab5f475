// Types of service.mjs: the worker's service endpoints.

export interface ServiceErrorFields {
  error: string
  status: number
  message?: string
  retryAfter?: number | null
  wechatErrcode?: number | null
}

/** A refusal by the worker (its answer carried X-WX-Edge-Error). */
export declare class ServiceError extends Error {
  constructor(fields: ServiceErrorFields)
  /** The contract's error code, e.g. "not_found", "rate_limited". */
  readonly error: string
  readonly status: number
  /** Seconds from Retry-After, or null. */
  readonly retryAfter: number | null
  readonly wechatErrcode: number | null
}
export declare class NoLiveSessionError extends ServiceError {}
export declare class ServiceAuthError extends ServiceError {}
export declare class RelayRefusedError extends ServiceError {}
export declare class RateLimitedError extends ServiceError {}
export declare class UnavailableError extends ServiceError {}

export declare function serviceErrorOf(fields: ServiceErrorFields): ServiceError

export interface ServiceClientOptions {
  /** The worker: https://edge.example.com (http only for a loopback host). */
  baseUrl: string
  /** The worker's SERVICE_TOKEN. */
  token: string
  fetch?: typeof fetch
  timeoutMs?: number
}

export interface Signature {
  signature: string
  sig_method: 'hmac_sha256'
}

export interface RelayOptions {
  method?: string
  query?: Record<string, string> | URLSearchParams
  json?: unknown
  body?: string | Uint8Array
  contentType?: string
}

export interface RelayAnswer {
  status: number
  contentType: string | null
  body: Uint8Array
  text(): string
  json(): any
}

export interface ServiceClient {
  checkSessionKey(openid: string): Promise<boolean>
  resetSessionKey(openid: string): Promise<boolean>
  sign(openid: string, data: string): Promise<Signature>
  decrypt(openid: string, encrypted: { encryptedData: string; iv: string }): Promise<Record<string, unknown>>
  relay(path: string, options?: RelayOptions): Promise<RelayAnswer>
}

export declare function createServiceClient(options: ServiceClientOptions): ServiceClient
