// wechat-sim.mjs — a local simulator of the WeChat server API, for development
// and tests only. It is NOT WeChat and holds no real credentials.
//
// The worker is pointed at it with `WX_API_BASE=<sim url>`. It speaks WeChat's
// real wire format, quirks included:
//   - every reply is HTTP 200 with `Content-Type: text/plain` and a JSON body;
//   - failures are `{"errcode": N, "errmsg": "..., rid: ..."}`, still HTTP 200;
//     the worker must look at `errcode`, never at the status or content type;
//   - a successful code2Session reply has no `errcode` field at all;
//   - only deliberate fault cases (`http500…`, `garbage…`) break these rules.
//
// Simulated endpoints:
//   GET  /sns/jscode2session            code → {session_key, openid, unionid?}
//   POST /cgi-bin/stable_token          cached access_token (same token until it
//                                       expires, is force-refreshed or invalidated)
//   GET  /cgi-bin/token                 legacy API: always errcode 40164 here
//   POST /wxa/business/getuserphonenumber?access_token=T
//                                       phone code → phone_info
//   GET  /wxa/checksession?access_token=T&openid=O&signature=S&sig_method=hmac_sha256
//                                       errcode 0 when S = hex(HMAC-SHA256(key = the user's
//                                       LATEST session_key, as its base64 text; message "")),
//                                       else 87009
//   GET  /wxa/resetusersessionkey?…the same…
//                                       the same checks; the user gets a new latest key:
//                                       {errcode: 0, errmsg: "ok", openid, session_key}
// and, as targets of the worker's relay (each checks its access_token like
// getuserphonenumber; every call is kept by relayed()):
//   POST /wxa/msg_sec_check?access_token=T   {content, …} → errcode 0 with a
//                                       `result`, or 87014 when `content`
//                                       contains a trigger word (RISKY_WORDS)
//   POST /wxa/getwxacodeunlimit?access_token=T  {scene, …} → PNG bytes
//                                       (Content-Type image/png, the same bytes
//                                       for the same scene: see pngFor), or a
//                                       JSON errcode (bad token, no scene)
//   ANY  /sim/echo?access_token=T       JSON: what arrived (method, the query
//                                       without access_token, content type,
//                                       body as base64)
//
// The "user" behind a wx.login code is the part of the code before the first
// '.', so `alice.1` and `alice.2` are two logins of the same user. Users whose
// name starts with a trigger word produce faults (see FAULTS below); `nounion…`
// users get no unionid. Phone codes are `phone-<digits>`, `phonenum-<digits>`
// (countryCode as a number) and `phoneforeign-<digits>` (another app's
// watermark).
//
// Controls, in process (the returned object) and over HTTP (for curl):
//   stats()                    GET  /__sim/stats
//   reset()                    POST /__sim/reset
//   invalidateAccessToken()    POST /__sim/invalidate-token
//   resetSecret(secret)        POST /__sim/reset-secret    {secret}  (an AppSecret reset in the
//                                       console: only the new secret is accepted, and the
//                                       access_token made under the old one stops working)
//   encryptPhone({...})        POST /__sim/encrypt-phone   {user, phone, countryCode?, appid?, timestamp?, key?}
//   encrypt(user, plaintext, {key}?)  POST /__sim/encrypt  {user, plaintext, key?}
//                                       any open data (WeRun {stepInfoList, watermark},
//                                       share info…) sealed like the phone, under `key`
//                                       (one of sessionKeysOf(user), e.g. a stale one)
//                                       or the user's latest key
//   failNext(path, fault)      (in process only) the next call to path answers {errcode},
//                                       {http500}, {garbage}, {slow} or {reply: <any JSON>};
//                                       clearFaults() forgets those not met yet
//   rejectTokens(n)            POST /__sim/reject-tokens   {n}  the next n calls that check an
//                                       access_token answer 40001 whatever token they carry
//   relayed()                  GET  /__sim/relayed  every call to a relay target (see below)
//   sessionKeyOf(user)         (in process only) the user's latest session_key
//   sessionKeysOf(user)        (in process only) all of them, oldest first
//   accessToken()              (in process only) the valid access_token, or null
//   watermark({appid?, timestamp?})  (in process only) {timestamp, appid} as WeChat writes it
//   pngFor(scene)              (in process only) the PNG getwxacodeunlimit answers for `scene`
//
// CLI: node tests/support/wechat-sim.mjs --port 8788 --appid wx… --secret …
//      (appid/secret default to $WX_APPID / $WX_APPSECRET, then to dev values)

import { createServer } from 'node:http';
import { createCipheriv, createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { crc32, deflateSync } from 'node:zlib';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { serve } from './serve.mjs';

/** How many requests `stats().lastRequests` keeps. */
const LAST_REQUESTS = 50;
/** Largest request body the simulator reads (WeChat requests are small; the relay may send up to 2 MiB). */
const MAX_BODY = 4 * 1024 * 1024;
/** Watermark appid used by `phoneforeign-…` codes: some other mini-program. */
const FOREIGN_APPID = 'wx0000000000000000';
/** msg_sec_check answers 87014 for content containing one of these. */
export const RISKY_WORDS = ['forbidden-word', '违禁词'];
/** How many relay-target calls `relayed()` keeps. */
const RELAYED = 100;

/**
 * Users whose name starts with one of these prefixes make code2Session fail.
 * Order matters: `busyonce` must be tested before `busy`, `http500once`
 * before `http500`.
 */
const FAULTS = [
  ['invalid', { errcode: 40029, errmsg: 'invalid code' }],
  ['blocked', { errcode: 40226, errmsg: 'high risk user' }],
  ['ratelimit', { errcode: 45011, errmsg: 'api minute-quota reach limit  mustslower  retry next minute' }],
  ['busyonce', { errcode: -1, errmsg: 'system error', once: true }],
  ['busy', { errcode: -1, errmsg: 'system error' }],
  ['http500once', { http500: true, once: true }],
  ['http500', { http500: true }],
  ['garbage', { garbage: true }],
  ['slow', { slow: true }],
];

const HTML_500 =
  '<html>\r\n<head><title>500 Internal Server Error</title></head>\r\n' +
  '<body>\r\n<center><h1>500 Internal Server Error</h1></center>\r\n' +
  '<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n';

/**
 * Start a simulator.
 *
 * @param {object} options
 * @param {number} [options.port=0]          0 picks a free port
 * @param {string} [options.host='127.0.0.1']
 * @param {string} options.appid             the only appid accepted
 * @param {string} options.secret            the only AppSecret accepted
 * @param {number} [options.tokenTtl=7200]   access_token lifetime in seconds
 * @param {number} [options.slowMs=15000]    delay of `slow…` users, in ms
 */
export async function startWechatSim({
  port = 0,
  host = '127.0.0.1',
  appid,
  secret,
  tokenTtl = 7200,
  slowMs = 15000,
} = {}) {
  if (typeof appid !== 'string' || appid === '') throw new TypeError('startWechatSim: appid is required');
  if (typeof secret !== 'string' || secret === '') throw new TypeError('startWechatSim: secret is required');

  let state = freshState();
  /** Timers of pending `slow…` replies, cleared on close() so nothing keeps the process alive. */
  const timers = new Set();

  function freshState() {
    return {
      sessionKeys: new Map(), // user → current base64 session_key
      keyHistory: new Map(), // user → every session_key WeChat gave the user, oldest first
      users: new Map(), // openid → user
      rejectTokens: 0, // the next this many token checks fail whatever the token
      faults: new Map(), // path → [fault, …]: failNext()
      usedCodes: new Set(), // wx.login codes already exchanged
      failedOnce: new Set(), // busyonce/http500once codes that already failed once
      usedPhoneCodes: new Set(),
      token: null, // { value, expiresAt (ms) } — the single valid access_token
      counts: {
        requests: 0, // every call to a WeChat API (known or not), controls excepted
        code2session: 0,
        stable_token: 0,
        stable_token_force: 0,
        getuserphonenumber: 0,
        token_errors: 0,
        checksession: 0,
        resetusersessionkey: 0,
        msg_sec_check: 0,
        getwxacodeunlimit: 0,
        echo: 0,
      },
      lastRequests: [],
      relayed: [], // calls to the relay targets, unredacted (see relayed())
    };
  }

  // ---- WeChat endpoints -------------------------------------------------

  /** GET /sns/jscode2session */
  function code2session(q, reply) {
    state.counts.code2session++;
    if (q.get('appid') !== appid) return reply.error(40013, 'invalid appid');
    if (q.get('secret') !== secret) return reply.error(40125, 'invalid appsecret');
    if (q.get('grant_type') !== 'authorization_code') return reply.error(40002, 'invalid grant_type');
    const code = q.get('js_code');
    if (!code) return reply.error(41008, 'missing code');
    if (state.usedCodes.has(code)) return reply.error(40163, 'code been used');

    const user = userOf(code);
    const fault = FAULTS.find(([prefix]) => user.startsWith(prefix))?.[1];
    if (fault && !(fault.once && state.failedOnce.has(code))) {
      if (fault.once) state.failedOnce.add(code);
      if (fault.http500) return reply.raw(500, 'text/html', HTML_500);
      if (fault.garbage) return reply.raw(200, 'text/html', '<html>not json</html>');
      if (!fault.slow) return reply.error(fault.errcode, fault.errmsg);
    }

    // Success: the code is spent and the user's session_key rotates at once,
    // even when the answer itself is delayed (`slow…`).
    state.usedCodes.add(code);
    const sessionKey = newSessionKey(user);
    const body = { session_key: sessionKey, openid: idFor('o', 'openid', user) };
    if (!user.startsWith('nounion')) body.unionid = idFor('u', 'unionid', user);
    if (fault?.slow) return reply.later(slowMs, body);
    return reply.json(body);
  }

  /** POST /cgi-bin/stable_token */
  function stableToken(method, body, reply) {
    state.counts.stable_token++;
    if (method !== 'POST') return reply.error(43002, 'require POST method');
    const req = parseJson(body);
    if (!req || typeof req !== 'object') return reply.error(47001, 'data format error');
    if (req.force_refresh === true) state.counts.stable_token_force++;
    if (req.grant_type !== 'client_credential') return reply.error(40002, 'invalid grant_type');
    if (req.appid !== appid) return reply.error(40013, 'invalid appid');
    if (req.secret !== secret) return reply.error(40125, 'invalid appsecret');

    const now = Date.now();
    // A forced refresh replaces the token, and the previous one stops working.
    if (req.force_refresh === true || !state.token || now >= state.token.expiresAt) {
      state.token = { value: newAccessToken(), expiresAt: now + tokenTtl * 1000 };
    }
    const expiresIn = Math.max(1, Math.floor((state.token.expiresAt - now) / 1000));
    return reply.json({ access_token: state.token.value, expires_in: expiresIn });
  }

  /** POST /wxa/business/getuserphonenumber?access_token=T */
  function getUserPhoneNumber(method, q, body, reply) {
    state.counts.getuserphonenumber++;
    if (!tokenOk(q, reply)) return;
    if (method !== 'POST') return reply.error(43002, 'require POST method');
    const req = parseJson(body);
    if (!req || typeof req !== 'object') return reply.error(47001, 'data format error');
    // `req.openid`, when present, is accepted without a check.
    const code = typeof req.code === 'string' ? req.code : '';
    const m = /^(phone|phonenum|phoneforeign)-(\d+)$/.exec(code);
    if (!m || state.usedPhoneCodes.has(code)) return reply.error(40029, 'invalid code');
    state.usedPhoneCodes.add(code);
    const [, kind, digits] = m;
    return reply.json({
      errcode: 0,
      errmsg: 'ok',
      phone_info: {
        phoneNumber: digits,
        purePhoneNumber: digits,
        countryCode: kind === 'phonenum' ? 86 : '86',
        watermark: { timestamp: nowSeconds(), appid: kind === 'phoneforeign' ? FOREIGN_APPID : appid },
      },
    });
  }

  /**
   * The access_token check every API but code2Session makes: false (and the
   * error sent) when `access_token` is missing, unknown, expired, replaced or
   * refused by rejectTokens().
   */
  function tokenOk(q, reply) {
    const token = q.get('access_token');
    if (!token) {
      state.counts.token_errors++;
      reply.error(41001, 'access_token missing');
      return false;
    }
    if (!tokenValid(token) || state.rejectTokens > 0) {
      if (state.rejectTokens > 0) state.rejectTokens--;
      state.counts.token_errors++;
      reply.error(40001, 'invalid credential, access_token is invalid or not latest');
      return false;
    }
    return true;
  }

  function tokenValid(token) {
    return !!state.token && token === state.token.value && Date.now() < state.token.expiresAt;
  }

  /** A new latest session_key for `user` (the older ones are kept for sealing stale data). */
  function newSessionKey(user) {
    const sessionKey = randomBytes(16).toString('base64');
    state.sessionKeys.set(user, sessionKey);
    const history = state.keyHistory.get(user) ?? [];
    history.push(sessionKey);
    state.keyHistory.set(user, history);
    state.users.set(idFor('o', 'openid', user), user);
    return sessionKey;
  }

  /**
   * The checks checksession and resetusersessionkey share: GET, the token,
   * a known openid, sig_method hmac_sha256, and the login-state signature
   * made with the user's latest key. Returns the user, or undefined (and the
   * error sent).
   */
  function signedUser(method, q, reply) {
    if (method !== 'GET') return void reply.error(43001, 'require GET method');
    if (!tokenOk(q, reply)) return undefined;
    const user = state.users.get(q.get('openid') ?? '');
    if (user === undefined) return void reply.error(40003, 'invalid openid');
    if (q.get('sig_method') !== 'hmac_sha256') return void reply.error(40097, 'invalid args: sig_method');
    const expected = loginSignature(state.sessionKeys.get(user), '');
    const given = Buffer.from(q.get('signature') ?? '', 'utf8');
    if (given.length !== expected.length || !timingSafeEqual(given, Buffer.from(expected, 'utf8'))) {
      return void reply.error(87009, 'invalid signature');
    }
    return user;
  }

  /** GET /wxa/checksession */
  function checkSession(method, q, reply) {
    state.counts.checksession++;
    if (signedUser(method, q, reply) === undefined) return;
    reply.json({ errcode: 0, errmsg: 'ok' });
  }

  /** GET /wxa/resetusersessionkey */
  function resetUserSessionKey(method, q, reply) {
    state.counts.resetusersessionkey++;
    const user = signedUser(method, q, reply);
    if (user === undefined) return;
    const sessionKey = newSessionKey(user);
    reply.json({ errcode: 0, errmsg: 'ok', openid: q.get('openid'), session_key: sessionKey });
  }

  /** POST /wxa/msg_sec_check?access_token=T — a JSON API behind the relay. */
  function msgSecCheck(method, q, body, reply) {
    state.counts.msg_sec_check++;
    if (!tokenOk(q, reply)) return;
    if (method !== 'POST') return reply.error(43002, 'require POST method');
    const req = parseJson(body);
    if (!req || typeof req !== 'object' || typeof req.content !== 'string') {
      return reply.error(47001, 'data format error');
    }
    if (RISKY_WORDS.some((word) => req.content.includes(word))) return reply.error(87014, 'risky content');
    return reply.json({
      errcode: 0,
      errmsg: 'ok',
      result: { suggest: 'pass', label: 100 },
      trace_id: randomBytes(8).toString('hex'),
    });
  }

  /** POST /wxa/getwxacodeunlimit?access_token=T — answers image bytes. */
  function getWxaCodeUnlimit(method, q, body, reply) {
    state.counts.getwxacodeunlimit++;
    if (!tokenOk(q, reply)) return;
    if (method !== 'POST') return reply.error(43002, 'require POST method');
    const req = parseJson(body);
    if (!req || typeof req !== 'object' || typeof req.scene !== 'string' || req.scene === '') {
      return reply.error(41030, 'invalid scene');
    }
    return reply.bytes(200, 'image/png', pngFor(req.scene));
  }

  /** ANY /sim/echo?access_token=T — what the relay delivered, as JSON. */
  function echo(method, url, headers, body, reply) {
    state.counts.echo++;
    if (!tokenOk(url.searchParams, reply)) return;
    const query = [...url.searchParams].filter(([k]) => k !== 'access_token');
    return reply.json({
      errcode: 0,
      errmsg: 'ok',
      method,
      query,
      content_type: headers['content-type'] ?? null,
      body_base64: body.toString('base64'),
    });
  }

  // ---- controls ----------------------------------------------------------

  function stats() {
    return { ...state.counts, lastRequests: structuredClone(state.lastRequests) };
  }

  function reset() {
    state = freshState();
  }

  /** The current access_token stops working; the next stable_token call mints a new one. */
  function invalidateAccessToken() {
    state.token = null;
  }

  /** The AppSecret is reset: only `newSecret` is accepted, and the current access_token stops working. */
  function resetSecret(newSecret) {
    if (typeof newSecret !== 'string' || newSecret === '') throw new TypeError('resetSecret: a secret is required');
    secret = newSecret;
    state.token = null;
  }

  function sessionKeyOf(user) {
    return state.sessionKeys.get(user);
  }

  /** Every session_key WeChat gave `user`, oldest first (empty if none). */
  function sessionKeysOf(user) {
    return [...(state.keyHistory.get(user) ?? [])];
  }

  /** The access_token WeChat accepts now, or null. */
  function accessToken() {
    return state.token && Date.now() < state.token.expiresAt ? state.token.value : null;
  }

  /**
   * The next call to `path` (e.g. '/wxa/checksession') fails with `fault`:
   * {errcode, errmsg?} (HTTP 200 as WeChat does), {http500: true},
   * {garbage: true}, {slow: true} (answers after slowMs) or {reply: <JSON>}
   * (answers that, e.g. a reply naming another openid); called again, the
   * faults queue up.
   */
  function failNext(path, fault) {
    if (typeof path !== 'string' || !path.startsWith('/') || !fault || typeof fault !== 'object') {
      throw new TypeError('failNext: a path and a fault are required');
    }
    const queue = state.faults.get(path) ?? [];
    queue.push(fault);
    state.faults.set(path, queue);
  }

  /** Forget the faults failNext() queued and nothing met yet. */
  function clearFaults() {
    state.faults.clear();
  }

  /** The next `n` token checks answer 40001, whatever token they carry. */
  function rejectTokens(n) {
    if (!Number.isInteger(n) || n < 0) throw new TypeError('rejectTokens: a count is required');
    state.rejectTokens = n;
  }

  /**
   * The calls to the relay targets (msg_sec_check, getwxacodeunlimit,
   * sim/echo), oldest first, as they arrived: {method, path, query (every
   * parameter, access_token included, as [name, value] pairs), token (the
   * access_token), tokenValid (was it the valid one when it arrived),
   * contentType, headers (lower-case names), body (a Buffer), sawSecret
   * (the AppSecret appeared in the URL, a header or the body)}.
   */
  function relayed() {
    return state.relayed.map((r) => ({ ...r, query: r.query.map((p) => [...p]), body: Buffer.from(r.body) }));
  }

  /** A watermark as WeChat writes it into open data: {timestamp, appid}. */
  function watermark({ appid: watermarkAppid, timestamp = nowSeconds() } = {}) {
    return { timestamp, appid: watermarkAppid || appid };
  }

  /**
   * Seal open data (a JSON value, or a string taken as the plaintext) the
   * way WeChat does: AES-128-CBC under the user's latest session_key, or
   * under `key` (one of sessionKeysOf(user): data a client got before a
   * later login). Throws if the user never logged in.
   */
  function encrypt(user, plaintext, { key } = {}) {
    const latest = state.sessionKeys.get(user);
    if (!latest) throw new Error(`wechat-sim: user ${JSON.stringify(user)} never logged in`);
    if (key !== undefined && !sessionKeysOf(user).includes(key)) {
      throw new Error(`wechat-sim: that key was never ${JSON.stringify(user)}'s`);
    }
    const text = typeof plaintext === 'string' ? plaintext : JSON.stringify(plaintext);
    return seal(key ?? latest, text);
  }

  /**
   * Encrypt a phone number as the legacy getPhoneNumber button does, with the
   * user's current session_key. Throws if the user never logged in.
   */
  function encryptPhone({
    user,
    phone,
    countryCode = '86',
    appid: watermarkAppid,
    timestamp = nowSeconds(),
    key,
  } = {}) {
    const cc = String(countryCode);
    const plaintext = JSON.stringify({
      phoneNumber: cc === '86' ? phone : `+${cc} ${phone}`,
      purePhoneNumber: phone,
      countryCode: cc,
      watermark: { timestamp, appid: watermarkAppid || appid },
    });
    return encrypt(user, plaintext, { key });
  }

  /** The /__sim/ routes: the controls above, over HTTP. Replies are application/json. */
  function control(method, path, body, res) {
    const send = (status, value) => sendRaw(res, status, 'application/json', JSON.stringify(value));
    const routes = {
      'GET /__sim/stats': () => send(200, stats()),
      'POST /__sim/reset': () => {
        reset();
        send(200, { ok: true });
      },
      'POST /__sim/invalidate-token': () => {
        invalidateAccessToken();
        send(200, { ok: true });
      },
      'POST /__sim/reset-secret': () => {
        const req = parseJson(body);
        if (!req || typeof req.secret !== 'string' || !req.secret) {
          return send(400, { errcode: 400, errmsg: 'body must be {"secret"}' });
        }
        resetSecret(req.secret);
        return send(200, { ok: true });
      },
      'GET /__sim/relayed': () =>
        send(
          200,
          relayed().map((r) => ({ ...r, body: r.body.toString('base64') })),
        ),
      'POST /__sim/reject-tokens': () => {
        const req = parseJson(body);
        if (!req || !Number.isInteger(req.n) || req.n < 0) {
          return send(400, { errcode: 400, errmsg: 'body must be {"n": <count>}' });
        }
        rejectTokens(req.n);
        return send(200, { ok: true });
      },
      'POST /__sim/encrypt': () => {
        const req = parseJson(body);
        if (!req || typeof req.user !== 'string' || req.plaintext === undefined) {
          return send(400, { errcode: 400, errmsg: 'body must be {"user", "plaintext", "key"?}' });
        }
        if (!state.sessionKeys.has(req.user)) {
          return send(404, { errcode: 404, errmsg: `user ${JSON.stringify(req.user)} never logged in` });
        }
        if (req.key !== undefined && !sessionKeysOf(req.user).includes(req.key)) {
          return send(400, { errcode: 400, errmsg: "key was never that user's" });
        }
        return send(200, encrypt(req.user, req.plaintext, { key: req.key }));
      },
      'POST /__sim/encrypt-phone': () => {
        const req = parseJson(body);
        if (!req || typeof req.user !== 'string' || typeof req.phone !== 'string' || !req.phone) {
          return send(400, { errcode: 400, errmsg: 'body must be {"user", "phone", "countryCode"?, "appid"?}' });
        }
        if (!state.sessionKeys.has(req.user)) {
          return send(404, { errcode: 404, errmsg: `user ${JSON.stringify(req.user)} never logged in` });
        }
        if (req.key !== undefined && !sessionKeysOf(req.user).includes(req.key)) {
          return send(400, { errcode: 400, errmsg: "key was never that user's" });
        }
        return send(200, encryptPhone(req));
      },
    };
    const handler = routes[`${method} ${path}`];
    if (handler) return handler();
    const allowed = Object.keys(routes).find((key) => key.endsWith(` ${path}`));
    if (allowed) return send(405, { errcode: 405, errmsg: `use ${allowed}` });
    return send(404, { errcode: 404, errmsg: `no such control: ${path}` });
  }

  // ---- HTTP plumbing -----------------------------------------------------

  const server = createServer(async (req, res) => {
    let body;
    try {
      body = await readBody(req);
    } catch {
      if (!res.headersSent) sendRaw(res, 413, 'text/plain', '');
      return;
    }
    const url = new URL(req.url, 'http://sim.invalid');
    const path = url.pathname;
    if (path.startsWith('/__sim/')) return control(req.method, path, body, res);

    state.counts.requests++;
    record(req.method, url, body);
    const reply = replier(res);
    if (RELAY_TARGETS.has(path)) {
      keepRelayed(req, url, body);
      // A header of WeChat's own (as its real answers carry some): the relay must not pass it on.
      res.setHeader('X-Sim-Rid', rid());
    }
    const fault = state.faults.get(path)?.shift();
    if (fault) {
      if (state.faults.get(path).length === 0) state.faults.delete(path);
      if (fault.http500) return reply.raw(500, 'text/html', HTML_500);
      if (fault.garbage) return reply.raw(200, 'text/html', '<html>not json</html>');
      if (fault.slow) return reply.later(slowMs, { errcode: 0, errmsg: 'ok (too late)' });
      if (fault.reply) return reply.json(fault.reply);
      return reply.error(fault.errcode, fault.errmsg ?? 'simulated failure');
    }
    switch (path) {
      case '/sns/jscode2session':
        return code2session(url.searchParams, reply);
      case '/cgi-bin/stable_token':
        return stableToken(req.method, body, reply);
      case '/cgi-bin/token':
        return reply.error(40164, 'use stable_token in this simulator');
      case '/wxa/business/getuserphonenumber':
        return getUserPhoneNumber(req.method, url.searchParams, body, reply);
      case '/wxa/checksession':
        return checkSession(req.method, url.searchParams, reply);
      case '/wxa/resetusersessionkey':
        return resetUserSessionKey(req.method, url.searchParams, reply);
      case '/wxa/msg_sec_check':
        return msgSecCheck(req.method, url.searchParams, body, reply);
      case '/wxa/getwxacodeunlimit':
        return getWxaCodeUnlimit(req.method, url.searchParams, body, reply);
      case '/sim/echo':
        return echo(req.method, url, req.headers, body, reply);
      default:
        return sendRaw(res, 404, 'text/plain', JSON.stringify({ errcode: 404, errmsg: `unknown api ${path}` }));
    }
  });

  /** Reply helpers for one WeChat-API response. */
  function replier(res) {
    const json = (value) => sendRaw(res, 200, 'text/plain', JSON.stringify(value));
    return {
      json,
      error: (errcode, errmsg) => json({ errcode, errmsg: `${errmsg}, rid: ${rid()}` }),
      raw: (status, type, text) => sendRaw(res, status, type, text),
      bytes: (status, type, buf) => sendRaw(res, status, type, buf),
      later(ms, value) {
        const timer = setTimeout(() => {
          timers.delete(timer);
          if (!res.destroyed) json(value);
        }, ms);
        timers.add(timer);
        // A caller that gives up (timeout, abort) must not leave the timer behind.
        res.on('close', () => {
          clearTimeout(timer);
          timers.delete(timer);
        });
      },
    };
  }

  /** Keep the last requests for stats(), with the AppSecret blanked out. */
  function record(method, url, body) {
    const redact = (key, value) => {
      if (typeof value !== 'string') return value;
      if (key === 'secret') return value === secret ? '[secret]' : '[wrong secret]';
      return value.split(secret).join('[secret]');
    };
    const query = {};
    for (const [k, v] of url.searchParams) query[k] = redact(k, v);
    let recorded = body.length === 0 ? null : parseJson(body);
    if (recorded && typeof recorded === 'object') {
      recorded = JSON.parse(JSON.stringify(recorded), (k, v) => redact(k, v));
    } else if (body.length > 0) {
      recorded = redact('', body.toString('utf8'));
    }
    state.lastRequests.push({ method, path: redact('', url.pathname), query, body: recorded });
    if (state.lastRequests.length > LAST_REQUESTS) state.lastRequests.shift();
  }

  /** Keep a call to a relay target, unredacted, noting whether the AppSecret came with it. */
  function keepRelayed(req, url, body) {
    const headers = {};
    for (const [k, v] of Object.entries(req.headers)) headers[k] = Array.isArray(v) ? v.join(', ') : String(v);
    const seen = [req.url, ...Object.values(headers)].some((v) => v.includes(secret)) || body.includes(secret);
    const token = url.searchParams.get('access_token');
    state.relayed.push({
      method: req.method,
      path: url.pathname,
      query: [...url.searchParams],
      token,
      tokenValid: token !== null && tokenValid(token),
      contentType: headers['content-type'] ?? null,
      headers,
      body: Buffer.from(body),
      sawSecret: seen,
    });
    if (state.relayed.length > RELAYED) state.relayed.shift();
  }

  function userOf(code) {
    const dot = code.indexOf('.');
    return dot === -1 ? code : code.slice(0, dot);
  }

  /** Stable per-app ids: prefix + 27 chars of base64url(sha256(kind:appid:user)) → 28 chars like real ones. */
  function idFor(prefix, kind, user) {
    return prefix + createHash('sha256').update(`${kind}:${appid}:${user}`).digest('base64url').slice(0, 27);
  }

  const served = await serve(server, {
    port,
    host,
    beforeClose() {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
    },
  });

  return {
    ...served,
    stats,
    reset,
    invalidateAccessToken,
    resetSecret,
    encryptPhone,
    encrypt,
    watermark,
    rejectTokens,
    failNext,
    clearFaults,
    relayed,
    accessToken,
    pngFor,
    sessionKeyOf,
    sessionKeysOf,
  };
}

// ---- helpers shared by all instances ---------------------------------------

/** The paths whose calls relayed() keeps: what the worker's relay is tested against. */
const RELAY_TARGETS = new Set(['/wxa/msg_sec_check', '/wxa/getwxacodeunlimit', '/sim/echo']);

function sendRaw(res, status, type, text) {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

/** WeChat's login-state signature: hex HMAC-SHA256 keyed by the session_key's base64 TEXT. */
export function loginSignature(sessionKey, message) {
  return createHmac('sha256', Buffer.from(sessionKey, 'utf8')).update(message, 'utf8').digest('hex');
}

/** AES-128-CBC with PKCS#7 (createCipheriv's default padding) under a base64 session_key. */
function seal(sessionKey, plaintext) {
  const iv = randomBytes(16);
  const cipher = createCipheriv('aes-128-cbc', Buffer.from(sessionKey, 'base64'), iv);
  const encryptedData = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return { encryptedData: encryptedData.toString('base64'), iv: iv.toString('base64') };
}

/**
 * The PNG getwxacodeunlimit answers for `scene`: a real 16×16 RGB image whose
 * pixels come from sha256(scene), so equal scenes give equal bytes. Its
 * signature and compressed data hold bytes that are not UTF-8 (0x89, 0x1a,
 * CR LF…): any text decoding on the way breaks it.
 */
export function pngFor(scene) {
  const seed = createHash('sha256').update(scene, 'utf8').digest();
  const side = 16;
  const rows = [];
  for (let y = 0; y < side; y++) {
    const row = Buffer.alloc(1 + side * 3); // filter byte 0, then RGB
    for (let i = 1; i < row.length; i++) row[i] = seed[(y * 7 + i) % seed.length] ^ (y * 16 + i);
    rows.push(row);
  }
  const chunk = (type, data) => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(data.length, 0);
    head.write(type, 4, 'latin1');
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])) >>> 0, 0);
    return Buffer.concat([head, data, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(side, 0);
  ihdr.writeUInt32BE(side, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(Buffer.concat(rows))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reject(new Error('body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function parseJson(buf) {
  try {
    return JSON.parse(buf.toString('utf8'));
  } catch {
    return undefined;
  }
}

function newAccessToken() {
  // Real tokens are ~136-char opaque strings; 96 base64url chars is enough to look alike.
  return randomBytes(72).toString('base64url');
}

/** Request id appended to errmsg like WeChat's ("…, rid: 6744a1b2-1c2d3e4f-5a6b7c8d"). */
function rid() {
  const time = Math.floor(Date.now() / 1000)
    .toString(16)
    .padStart(8, '0');
  return `${time}-${randomBytes(4).toString('hex')}-${randomBytes(4).toString('hex')}`;
}

function nowSeconds() {
  return Math.floor(Date.now() / 1000);
}

// ---- CLI -------------------------------------------------------------------

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '8788' },
      host: { type: 'string', default: '127.0.0.1' },
      appid: { type: 'string', default: process.env.WX_APPID || 'wxd930ea5d5a258f4f' },
      secret: { type: 'string', default: process.env.WX_APPSECRET || 'dev-simulator-secret' },
      'token-ttl': { type: 'string', default: '7200' },
      'slow-ms': { type: 'string', default: '15000' },
    },
  });
  const sim = await startWechatSim({
    port: Number(values.port),
    host: values.host,
    appid: values.appid,
    secret: values.secret,
    tokenTtl: Number(values['token-ttl']),
    slowMs: Number(values['slow-ms']),
  });
  // stdout carries only the URL, so scripts can read it; the note goes to stderr.
  console.log(sim.url);
  console.error(`wechat-sim: simulated WeChat API for appid ${values.appid} (dev/test only; Ctrl-C stops it)`);
  const stop = () => sim.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
