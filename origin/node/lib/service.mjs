// Typed calls to the worker's service endpoints (issue 19), for your origin:
// server to server, with the worker's SERVICE_TOKEN. Never ship the token
// to a mini-program.
//
//   import { createServiceClient, NoLiveSessionError } from '@wx-edge/origin/service'
//   const edge = createServiceClient({ baseUrl: 'https://edge.example.com', token: process.env.WX_EDGE_SERVICE_TOKEN })
//   await edge.checkSessionKey(openid)              // → true | false
//   await edge.resetSessionKey(openid)              // → true
//   await edge.sign(openid, data)                   // → { signature, sig_method: 'hmac_sha256' }
//   await edge.decrypt(openid, { encryptedData, iv }) // → the decrypted object (watermark included)
//   await edge.relay('wxa/msg_sec_check', { json: { content, version: 2, scene: 1, openid } })
//                                                   // → WeChat's answer: { status, contentType, body, text(), json() }
//
// A refusal by the worker (its answers carry X-WX-Edge-Error) is thrown as a
// ServiceError — or the subclass for its kind — with `error` (the contract's
// code), `status`, `retryAfter` (seconds, from Retry-After, or null),
// `wechatErrcode` and the worker's `message`. What the relay passes on from
// WeChat is returned, never thrown: WeChat's errcode is yours to read.

/** A refusal by the worker. */
export class ServiceError extends Error {
  constructor({ error, status, message, retryAfter = null, wechatErrcode = null }) {
    super(message || `${status} ${error}`)
    this.name = 'ServiceError'
    this.error = error
    this.status = status
    this.retryAfter = retryAfter
    this.wechatErrcode = wechatErrcode
  }
}
/** 404 not_found: the user has no live session (or the endpoints are off: no SERVICE_TOKEN). */
export class NoLiveSessionError extends ServiceError {
  name = 'NoLiveSessionError'
}
/** 401: SERVICE_TOKEN missing or wrong. */
export class ServiceAuthError extends ServiceError {
  name = 'ServiceAuthError'
}
/** 403 relay_refused: the relay does not call this WeChat path. */
export class RelayRefusedError extends ServiceError {
  name = 'RelayRefusedError'
}
/** 429 rate_limited: wait `retryAfter` seconds. */
export class RateLimitedError extends ServiceError {
  name = 'RateLimitedError'
}
/** 502 / 503: WeChat or the worker's store failed; try again (after `retryAfter` when set). */
export class UnavailableError extends ServiceError {
  name = 'UnavailableError'
}

const KINDS = [
  [(e) => e.status === 404, NoLiveSessionError],
  [(e) => e.status === 401, ServiceAuthError],
  [(e) => e.error === 'relay_refused', RelayRefusedError],
  [(e) => e.status === 429, RateLimitedError],
  [(e) => e.status === 502 || e.status === 503, UnavailableError],
]

/** The typed error for a worker's refusal. */
export function serviceErrorOf(fields) {
  const Kind = KINDS.find(([matches]) => matches(fields))?.[1] ?? ServiceError
  return new Kind(fields)
}

const RELAY_PATH = /^[A-Za-z0-9_.\-]+(\/[A-Za-z0-9_.\-]+)*$/

/** The base URL must be https:// (plain http only to a loopback host): the token travels with every call. */
function checkBaseUrl(baseUrl) {
  let u
  try {
    u = new URL(baseUrl)
  } catch {
    throw new TypeError(`baseUrl ${JSON.stringify(String(baseUrl))} is not an absolute URL`)
  }
  const loopback = u.hostname === 'localhost' || u.hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(u.hostname)
  if (!(u.protocol === 'https:' || (u.protocol === 'http:' && loopback))) {
    throw new TypeError(`baseUrl must be https:// (plain http only for a loopback host), got ${JSON.stringify(String(baseUrl))}`)
  }
  if (u.search || u.hash) throw new TypeError('baseUrl takes no query or fragment')
  return u.href.replace(/\/+$/, '')
}

function checkOpenid(openid) {
  if (typeof openid !== 'string' || !/^[A-Za-z0-9_-]{1,128}$/.test(openid)) {
    throw new TypeError('openid must be a WeChat openid (letters, digits, - and _)')
  }
  return openid
}

function retryAfterOf(headers) {
  const v = headers.get('retry-after')
  if (v === null || !/^\d+$/.test(v.trim())) return null
  return Number(v.trim())
}

/**
 * @param {object} o
 * @param {string} o.baseUrl   the worker, e.g. https://edge.example.com
 * @param {string} o.token     SERVICE_TOKEN
 * @param {typeof fetch} [o.fetch]
 * @param {number} [o.timeoutMs=10000]
 */
export function createServiceClient({ baseUrl, token, fetch: fetchImpl = globalThis.fetch, timeoutMs = 10_000 } = {}) {
  const base = checkBaseUrl(baseUrl)
  if (typeof token !== 'string' || !token) throw new TypeError('token (the worker\'s SERVICE_TOKEN) is required')

  async function send(method, path, { body, contentType, headers = {} } = {}) {
    const init = { method, headers: { ...headers, authorization: `Bearer ${token}` }, redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) }
    if (body !== undefined) {
      init.body = body
      if (contentType) init.headers['content-type'] = contentType
    }
    const res = await fetchImpl(base + path, init)
    const bytes = new Uint8Array(await res.arrayBuffer())
    const error = res.headers.get('x-wx-edge-error')
    if (error !== null) {
      let parsed = {}
      try {
        parsed = JSON.parse(new TextDecoder().decode(bytes))
      } catch {
        // the marker alone still says what went wrong
      }
      throw serviceErrorOf({
        error,
        status: res.status,
        message: typeof parsed.message === 'string' ? parsed.message : undefined,
        retryAfter: retryAfterOf(res.headers),
        wechatErrcode: Number.isInteger(parsed.wechat_errcode) ? parsed.wechat_errcode : null,
      })
    }
    return { res, bytes }
  }

  async function own(path, body) {
    const { res, bytes } = await send('POST', path, body === undefined ? {} : { body: JSON.stringify(body), contentType: 'application/json' })
    if (res.status !== 200) {
      throw new ServiceError({ error: 'unexpected_response', status: res.status, message: `the worker answered ${res.status} without X-WX-Edge-Error` })
    }
    return JSON.parse(new TextDecoder().decode(bytes))
  }

  const user = (openid, rest) => `/auth/service/users/${checkOpenid(openid)}/${rest}`

  return {
    /** WeChat checksession with the user's newest live session key: true while WeChat still holds it. */
    async checkSessionKey(openid) {
      return (await own(user(openid, 'session-key/check'))).valid === true
    },
    /** WeChat resetusersessionkey; the new key stays in the worker. */
    async resetSessionKey(openid) {
      return (await own(user(openid, 'session-key/reset'))).reset === true
    },
    /** WeChat's login-state signature of `data`: hex HMAC-SHA256 keyed with the session_key. */
    async sign(openid, data) {
      if (typeof data !== 'string') throw new TypeError('data must be a string')
      return own(user(openid, 'sign'), { data })
    },
    /** Decrypts wx open data ({encryptedData, iv}) with the user's live session keys, newest first. */
    async decrypt(openid, { encryptedData, iv } = {}) {
      if (typeof encryptedData !== 'string' || typeof iv !== 'string') throw new TypeError('encryptedData and iv must be strings')
      return (await own(user(openid, 'decrypt'), { encryptedData, iv })).data
    },
    /**
     * Calls WX_API_BASE/<path> through the worker, which adds its access_token.
     * `json` (serialized) or `body` (string / bytes, with `contentType`); `query` is added to the URL.
     * Resolves to WeChat's answer as it came; rejects with a ServiceError only for the worker's own refusals.
     */
    async relay(path, { method = 'POST', query, json, body, contentType } = {}) {
      if (typeof path !== 'string' || !RELAY_PATH.test(path) || path.split('/').some((s) => s === '.' || s === '..')) {
        throw new TypeError('path must be a WeChat API path such as "wxa/msg_sec_check" (no leading /, no . or .. segments)')
      }
      const qs = query === undefined ? '' : `?${new URLSearchParams(query)}`
      const payload = json !== undefined ? { body: JSON.stringify(json), contentType: 'application/json' } : body !== undefined ? { body, contentType } : {}
      const { res, bytes } = await send(method, `/auth/service/wechat/${path}${qs}`, payload)
      return {
        status: res.status,
        contentType: res.headers.get('content-type'),
        body: bytes,
        text: () => new TextDecoder().decode(bytes),
        json: () => JSON.parse(new TextDecoder().decode(bytes)),
      }
    },
  }
}
