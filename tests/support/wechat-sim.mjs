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
//   encryptPhone({...})        POST /__sim/encrypt-phone   {user, phone, countryCode?, appid?, timestamp?}
//   sessionKeyOf(user)         (in process only)
//
// CLI: node tests/support/wechat-sim.mjs --port 8788 --appid wx… --secret …
//      (appid/secret default to $WX_APPID / $WX_APPSECRET, then to dev values)

import { createServer } from 'node:http';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { serve } from './serve.mjs';

/** How many requests `stats().lastRequests` keeps. */
const LAST_REQUESTS = 50;
/** Largest request body the simulator reads (WeChat requests are tiny). */
const MAX_BODY = 1024 * 1024;
/** Watermark appid used by `phoneforeign-…` codes: some other mini-program. */
const FOREIGN_APPID = 'wx0000000000000000';

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
      usedCodes: new Set(), // wx.login codes already exchanged
      failedOnce: new Set(), // busyonce/http500once codes that already failed once
      usedPhoneCodes: new Set(),
      token: null, // { value, expiresAt (ms) } — the single valid access_token
      counts: { code2session: 0, stable_token: 0, stable_token_force: 0, getuserphonenumber: 0, token_errors: 0 },
      lastRequests: [],
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
    const sessionKey = randomBytes(16).toString('base64');
    state.sessionKeys.set(user, sessionKey);
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
    const token = q.get('access_token');
    if (!token) {
      state.counts.token_errors++;
      return reply.error(41001, 'access_token missing');
    }
    if (!state.token || token !== state.token.value || Date.now() >= state.token.expiresAt) {
      state.counts.token_errors++;
      return reply.error(40001, 'invalid credential, access_token is invalid or not latest');
    }
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

  /**
   * Encrypt a phone number as the legacy getPhoneNumber button does, with the
   * user's current session_key. Throws if the user never logged in.
   */
  function encryptPhone({ user, phone, countryCode = '86', appid: watermarkAppid, timestamp = nowSeconds() } = {}) {
    const sessionKey = state.sessionKeys.get(user);
    if (!sessionKey) throw new Error(`wechat-sim: user ${JSON.stringify(user)} never logged in`);
    const cc = String(countryCode);
    const plaintext = JSON.stringify({
      phoneNumber: cc === '86' ? phone : `+${cc} ${phone}`,
      purePhoneNumber: phone,
      countryCode: cc,
      watermark: { timestamp, appid: watermarkAppid || appid },
    });
    const iv = randomBytes(16);
    // createCipheriv pads with PKCS#7 by default.
    const cipher = createCipheriv('aes-128-cbc', Buffer.from(sessionKey, 'base64'), iv);
    const encryptedData = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return { encryptedData: encryptedData.toString('base64'), iv: iv.toString('base64') };
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
      'POST /__sim/encrypt-phone': () => {
        const req = parseJson(body);
        if (!req || typeof req.user !== 'string' || typeof req.phone !== 'string' || !req.phone) {
          return send(400, { errcode: 400, errmsg: 'body must be {"user", "phone", "countryCode"?, "appid"?}' });
        }
        if (!state.sessionKeys.has(req.user)) {
          return send(404, { errcode: 404, errmsg: `user ${JSON.stringify(req.user)} never logged in` });
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

    record(req.method, url, body);
    const reply = replier(res);
    switch (path) {
      case '/sns/jscode2session':
        return code2session(url.searchParams, reply);
      case '/cgi-bin/stable_token':
        return stableToken(req.method, body, reply);
      case '/cgi-bin/token':
        return reply.error(40164, 'use stable_token in this simulator');
      case '/wxa/business/getuserphonenumber':
        return getUserPhoneNumber(req.method, url.searchParams, body, reply);
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
    sessionKeyOf,
  };
}

// ---- helpers shared by all instances ---------------------------------------

function sendRaw(res, status, type, text) {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
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
