// Types of the Egg.js middleware (CommonJS): module.exports = (options, app) => middleware.
import type { Identity, Verifier, VerifierOptions } from '../lib/wx-identity.mjs'

declare namespace wxIdentity {
  interface EggOptions extends Partial<VerifierOptions> {
    verifier?: Verifier
    optional?: boolean
  }
  interface EggContext {
    get(field: string): string
    status: number
    body: unknown
    state: { wxIdentity?: Identity | null; [key: string]: unknown }
  }
}

declare function wxIdentity(
  options?: wxIdentity.EggOptions,
  app?: { logger?: { warn(...args: unknown[]): void } },
): (ctx: wxIdentity.EggContext, next: () => Promise<unknown>) => Promise<unknown>

export = wxIdentity
