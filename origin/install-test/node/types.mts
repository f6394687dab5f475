// Compiled with tsc --strict against the installed package's declarations.
import { createVerifier, type Identity } from '@wx-edge/origin'
import { wxIdentityExpress } from '@wx-edge/origin/middleware'
import { createServiceClient, ServiceError, type Signature } from '@wx-edge/origin/service'
import egg = require('@wx-edge/origin/egg')

const v = createVerifier({ audience: 'https://api.example.com', jwksUrl: 'https://edge.example.com/.well-known/jwks.json' })
export async function who(token: string): Promise<string> {
  const id: Identity = await v.verify(token)
  const phone: string | null = id.phone
  return id.openid + (phone ?? '')
}
export const mw = wxIdentityExpress({ verifier: v, optional: true })
export const eggMw = egg({ audience: 'https://api.example.com', jwksUrl: 'https://edge.example.com/.well-known/jwks.json' })
const edge = createServiceClient({ baseUrl: 'https://edge.example.com', token: 't' })
export async function signIt(openid: string): Promise<Signature | number> {
  try {
    const valid: boolean = await edge.checkSessionKey(openid)
    return valid ? await edge.sign(openid, 'data') : 0
  } catch (e) {
    if (e instanceof ServiceError) return e.retryAfter ?? e.status
    throw e
  }
}
// Misuse must not compile.
// @ts-expect-error audience is required
createVerifier({ jwksUrl: 'https://edge.example.com/.well-known/jwks.json' })
// @ts-expect-error data is a string
void edge.sign('o', { data: 1 })
