// Types of middleware.mjs: Express/Connect and Koa middleware.
import type { Identity, Verifier, VerifierOptions } from './wx-identity.mjs'

export interface MiddlewareOptions extends Partial<VerifierOptions> {
  /** A verifier made with createVerifier, instead of the verifier options. */
  verifier?: Verifier
  /** Let a request without X-WX-Identity through with a null identity. */
  optional?: boolean
}

export interface Refusal {
  status: 401 | 503
  body: { error: 'missing_identity' | 'invalid_identity' | 'jwks_unavailable'; message: string }
}

/** Status and JSON body for a failed verification (rethrows anything else). */
export declare function refusal(err: unknown): Refusal

/** Minimal shapes, so that the types need neither express nor koa installed. */
export interface ExpressLikeRequest {
  headers: Record<string, string | string[] | undefined>
  wxIdentity?: Identity | null
}
export interface ExpressLikeResponse {
  statusCode: number
  setHeader(name: string, value: string | number): unknown
  end(body?: string): unknown
}
export interface KoaLikeContext {
  get(field: string): string
  status: number
  body: unknown
  state: { wxIdentity?: Identity | null; [key: string]: unknown }
}

/** Express / Connect / node:http middleware: sets req.wxIdentity. */
export declare function wxIdentityExpress(
  options?: MiddlewareOptions,
): (req: ExpressLikeRequest, res: ExpressLikeResponse, next: (err?: unknown) => void) => void

/** Koa middleware: sets ctx.state.wxIdentity. */
export declare function wxIdentityKoa(
  options?: MiddlewareOptions,
): (ctx: KoaLikeContext, next: () => Promise<unknown>) => Promise<void>
