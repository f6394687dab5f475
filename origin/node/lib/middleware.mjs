// Express (and Connect / plain node:http) and Koa middleware around
// wx-identity.mjs. On success the handler gets the verified identity —
// Express: req.wxIdentity, Koa: ctx.state.wxIdentity — and reads identity
// from there, never from the plain X-WX-* headers. On failure: 401
// {"error": "invalid_identity" | "missing_identity"}, or 503
// {"error": "jwks_unavailable"} while the worker's JWKS cannot be fetched.
//
//   app.use(wxIdentityExpress({ jwksUrl, audience }))                 // Express
//   app.use(wxIdentityKoa({ jwksUrl, audience }))                     // Koa
//   { optional: true }: a request without X-WX-Identity (a PUBLIC_PATHS
//   request without a token) passes with identity null; a bad one is refused.
import { createVerifier, HEADER } from './wx-identity.mjs'

/** Status and JSON body for a failed verification. */
export function refusal(err) {
  if (err?.code === 'jwks_unavailable') return { status: 503, body: { error: 'jwks_unavailable', message: 'identity keys are unavailable; try again' } }
  if (err?.code === 'missing_identity') return { status: 401, body: { error: 'missing_identity', message: 'this API is reachable only through wx-edge' } }
  if (err?.code === 'invalid_identity') return { status: 401, body: { error: 'invalid_identity', message: 'the identity assertion is not valid' } }
  throw err // a bug, not a verdict: let the framework's error handling see it
}

/** A verifier from options, or the one passed as `verifier`. */
const verifierOf = (options) => options.verifier ?? createVerifier(options)

/** Runs the verification; returns the identity (or null when optional and absent). */
async function identityOf(verifier, value, optional) {
  if (optional && (value === undefined || value === '')) return null
  return verifier.verify(value)
}

export function wxIdentityExpress(options = {}) {
  const verifier = verifierOf(options)
  const optional = options.optional === true
  return function wxIdentity(req, res, next) {
    identityOf(verifier, req.headers[HEADER], optional).then(
      (id) => {
        req.wxIdentity = id
        next()
      },
      (err) => {
        let r
        try {
          r = refusal(err)
        } catch (e) {
          return next(e)
        }
        const text = JSON.stringify(r.body)
        res.statusCode = r.status
        res.setHeader('content-type', 'application/json')
        res.setHeader('content-length', Buffer.byteLength(text))
        res.end(text)
      },
    )
  }
}

export function wxIdentityKoa(options = {}) {
  const verifier = verifierOf(options)
  const optional = options.optional === true
  return async function wxIdentity(ctx, next) {
    let id
    try {
      id = await identityOf(verifier, ctx.get(HEADER), optional)
    } catch (err) {
      const r = refusal(err)
      ctx.status = r.status
      ctx.body = r.body
      return
    }
    ctx.state.wxIdentity = id
    await next()
  }
}
