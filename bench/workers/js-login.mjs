// A JavaScript reference for the benchmark's start-up and login
// comparison: the same job as the Rust worker's POST /auth/login, written
// plainly with the Workers runtime's own APIs (no dependencies), so the
// numbers compare a Rust/wasm worker with a JS worker doing equal work:
//
//   - read {"code"} from a JSON body (400 otherwise);
//   - code2Session: GET {WX_API_BASE}/sns/jscode2session with a timeout,
//     parse the text/plain JSON reply, map errcode to an error;
//   - a new session: 128-bit id, 256-bit refresh secret, its SHA-256 hash,
//     and the refresh token's tag (HMAC-SHA256 under REFRESH_SECRET over
//     the user and the session, its first 16 bytes);
//   - the user's session authority, a Durable Object named by the openid
//     (AUTHORITY, SQLite-backed, as the Rust worker's): it reads its state,
//     updates the user record (login count, times, IP), adds the session
//     with the session_key and the hash, writes the state back in one put,
//     then writes the session's KV read replica (session:{id}, without the
//     session_key, with an expiry) and answers;
//   - an HS256 access token (typ at+jwt, same claims) signed with WebCrypto
//     (the key is imported once per isolate), and the token pair as JSON;
//   - one JSON log line per login, as the Rust worker writes for operators
//     (its fields; the user is a keyed hash of the openid).
//
// Not a product: no form bodies, no phone, no refresh, no proxy.

const enc = new TextEncoder()
const hmacKeys = new Map() // secret → key, imported once per isolate

const b64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
const b64urlText = (s) => b64url(enc.encode(s))
const hex = (bytes) => [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, '0')).join('')
const random = (n) => crypto.getRandomValues(new Uint8Array(n))

function error(status, code, message, extra = {}) {
  return Response.json({ error: code, message, ...extra }, { status, headers: { 'x-wx-edge-error': code } })
}

async function key(secret) {
  if (!hmacKeys.has(secret)) {
    hmacKeys.set(secret, await crypto.subtle.importKey('raw', enc.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']))
  }
  return hmacKeys.get(secret)
}

/** The refresh token `{user}.{sid}.{secret}.{tag}`, as the Rust worker mints it. */
async function refreshToken(env, openid, sid, secret) {
  const user = b64urlText(openid)
  const mac = await crypto.subtle.sign('HMAC', await key(env.REFRESH_SECRET), enc.encode(`wx-edge/refresh-tag/v1\0${user}.${sid}`))
  return `${user}.${sid}.${secret}.${b64url(new Uint8Array(mac).slice(0, 16))}`
}

async function signAccess(env, claims) {
  const input = `${b64urlText(JSON.stringify({ alg: 'HS256', typ: 'at+jwt' }))}.${b64urlText(JSON.stringify(claims))}`
  const sig = await crypto.subtle.sign('HMAC', await key(env.TOKEN_SECRET), enc.encode(input))
  return `${input}.${b64url(sig)}`
}

async function login(request, env) {
  let code
  try {
    code = (await request.json()).code
  } catch {
    return error(400, 'invalid_request', 'the body must be JSON')
  }
  if (typeof code !== 'string' || code === '' || code.length > 256) return error(400, 'invalid_request', 'code is missing')

  const q = new URLSearchParams({ appid: env.WX_APPID, secret: env.WX_APPSECRET, js_code: code, grant_type: 'authorization_code' })
  let wx
  try {
    const res = await fetch(`${env.WX_API_BASE}/sns/jscode2session?${q}`, { signal: AbortSignal.timeout(Number(env.WX_TIMEOUT_MS || 5000)) })
    wx = JSON.parse(await res.text())
  } catch {
    return error(502, 'wechat_unavailable', 'WeChat did not answer')
  }
  if (wx.errcode) {
    if (wx.errcode === 40029 || wx.errcode === 40163) return error(400, 'invalid_code', 'call wx.login() again', { wechat_errcode: wx.errcode })
    return error(502, 'wechat_unavailable', 'WeChat refused', { wechat_errcode: wx.errcode })
  }
  if (typeof wx.openid !== 'string' || typeof wx.session_key !== 'string') return error(502, 'wechat_unavailable', 'unexpected reply')

  const now = Math.floor(Date.now() / 1000)
  const accessTtl = Number(env.ACCESS_TOKEN_TTL || 600)
  const refreshTtl = Number(env.REFRESH_TOKEN_TTL || 2592000)
  const sid = b64url(random(16))
  const secret = b64url(random(32))
  const hash = hex(await crypto.subtle.digest('SHA-256', enc.encode(secret)))

  const stub = env.AUTHORITY.get(env.AUTHORITY.idFromName(wx.openid))
  let user
  try {
    const res = await stub.fetch('https://authority/', {
      method: 'POST',
      body: JSON.stringify({
        openid: wx.openid, sid, unionid: wx.unionid, session_key: wx.session_key, refresh_hash: hash,
        ip: request.headers.get('cf-connecting-ip') ?? '', now, refresh_ttl: refreshTtl,
      }),
    })
    if (res.status !== 200) throw new Error(`authority answered ${res.status}`)
    user = await res.json()
  } catch {
    return error(503, 'store_unavailable', 'try again', {})
  }

  const claims = { iss: 'wx-edge', aud: env.WX_APPID, sub: wx.openid, sid, token_use: 'access', unionid: wx.unionid, iat: now, exp: now + accessTtl }
  return Response.json({
    access_token: await signAccess(env, claims),
    token_type: 'Bearer',
    expires_in: accessTtl,
    refresh_token: await refreshToken(env, wx.openid, sid, secret),
    refresh_expires_in: refreshTtl,
    openid: wx.openid,
    ...(wx.unionid ? { unionid: wx.unionid } : {}),
    phone_bound: Boolean(user.phone),
  })
}

/** One user's sessions, changed one request at a time. */
export class JsAuthority {
  constructor(state, env) {
    this.state = state
    this.env = env
  }

  async fetch(request) {
    const op = await request.json()
    const storage = this.state.storage
    const state = (await storage.get('state')) ?? { user: { first_login_at: op.now, login_count: 0 }, sessions: {} }
    state.user.last_login_at = op.now
    state.user.last_login_ip = op.ip
    state.user.login_count += 1
    state.sessions[op.sid] = {
      session_key: op.session_key, unionid: op.unionid, refresh_hash: op.refresh_hash, created_at: op.now, expires_at: op.now + op.refresh_ttl,
    }
    await storage.put('state', state)
    await this.env.SESSIONS.put(`session:${op.sid}`, JSON.stringify({
      openid: op.openid, unionid: op.unionid, created_at: op.now, expires_at: op.now + op.refresh_ttl,
    }), { expirationTtl: op.refresh_ttl })
    return Response.json(state.user)
  }
}

async function logged(request, env) {
  const started = Date.now()
  const res = await login(request, env)
  const user = res.status === 200 ? (await res.clone().json()).openid : undefined
  const line = {
    event: 'login',
    outcome: res.status === 200 ? 'ok' : 'error',
    ...(res.status === 200 ? {} : { code: res.headers.get('x-wx-edge-error'), status: res.status }),
    duration_ms: Date.now() - started,
    request_id: request.headers.get('cf-ray') ?? hex(random(8)),
    ...(user ? { user: b64url(await crypto.subtle.sign('HMAC', await key(env.TOKEN_SECRET), enc.encode(`log:${user}`))).slice(0, 16) } : {}),
  }
  console.log(JSON.stringify(line))
  return res
}

export default {
  fetch(request, env) {
    const { pathname } = new URL(request.url)
    if (pathname === '/auth/login') {
      return request.method === 'POST' ? logged(request, env) : error(405, 'method_not_allowed', 'use POST')
    }
    return error(404, 'not_found', 'this reference worker only does POST /auth/login')
  },
}
