// A small in-process stand-in for the wx-edge worker, speaking the contract's
// responses (shared/contract.md) closely enough to unit-test the client:
// login, refresh with rotation and reuse detection, logout, session, phone
// (both paths), and the authenticated proxy (which echoes the request).
//
//   const w = await startFakeWorker()
//   w.url                      base URL
//   w.count('/auth/refresh')   requests per path
//   w.expireAccessTokens()     every access token issued so far answers 401 token_expired
//   w.alwaysExpired = true     every access token answers 401 token_expired
//   w.revokeSessions()         every session is deleted (access → session_revoked, refresh → invalid_refresh_token)
//   w.encryptPhone(user, phone)   {encryptedData, iv} for the user's CURRENT session_key
//   w.rotateWechatKey(user)    WeChat moves the user to a new session_key the worker does not
//                              have (what makes wx.checkSession fail); POST /auth/session/rekey
//                              gives the session WeChat's current key
//   w.phoneRotates = true      /auth/phone rotates the refresh token and answers it, as workers
//                              did before binding stopped rotating (default: it does not, and
//                              the answer has no refresh_token / refresh_expires_in)
//   w.delay[path] = ms         delay answers on that path (to widen races)
//   w.fail[path] = {status, body, edge?, headers?}  answer that path with a fixed response once
//                              (an array: one per request, in order); `edge` sets the worker's
//                              X-WX-Edge-Error marker, `headers` adds headers (Retry-After)
//   w.workerError(status, error, headers)  such a response as the worker sends it (marked)
//   w.requests                 [{method, path, headers, body}] received
//
// The "user" of a login code is the part before the first '.', like the
// WeChat simulator; codes starting with 'bad' give 400 invalid_code
// (wechat_errcode 40029). Each login rotates the user's session_key.

import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';

export async function startFakeWorker({ accessTtl = 600, refreshTtl = 2592000 } = {}) {
  const sessions = new Map(); // sid → {user, openid, refresh, rotated:Set, phone, sessionKey}
  const access = new Map(); // token → {sid, expired}
  const sessionKeys = new Map(); // user → current session_key
  const counts = {};
  const requests = [];
  const usedCodes = new Set();
  let serial = 0;

  const w = {
    url: '',
    requests,
    delay: {},
    fail: {},
    alwaysExpired: false,
    phoneRotates: false,
    count: (path) => counts[path] || 0,
    resetCounts() {
      for (const k of Object.keys(counts)) delete counts[k];
      requests.length = 0;
    },
    expireAccessTokens() {
      for (const a of access.values()) a.expired = true;
    },
    revokeSessions() {
      sessions.clear();
    },
    sessionCount: () => sessions.size,
    rotateWechatKey(user) {
      if (!sessionKeys.has(user)) throw new Error(`fake worker: ${user} never logged in`);
      sessionKeys.set(user, randomBytes(16).toString('base64'));
    },
    encryptPhone(user, phone) {
      const sk = sessionKeys.get(user);
      if (!sk) throw new Error(`fake worker: ${user} never logged in`);
      return {
        encryptedData: Buffer.from(JSON.stringify({ sk, phone })).toString('base64'),
        iv: randomBytes(16).toString('base64'),
      };
    },
  };

  // The worker marks its own errors with X-WX-Edge-Error (origin answers pass through unmarked).
  const err = (status, error, message, extra = {}) => ({ status, body: { error, message, ...extra }, edge: error });
  w.workerError = (status, error, headers = {}) => ({ ...err(status, error, `the worker says ${error}`), headers });

  function issue(sid, session) {
    serial += 1;
    const token = `at.${sid}.${serial}`;
    access.set(token, { sid, expired: false });
    const body = {
      access_token: token,
      token_type: 'Bearer',
      expires_in: accessTtl,
      refresh_token: session.refresh,
      refresh_expires_in: refreshTtl,
      openid: session.openid,
      phone_bound: !!session.phone,
    };
    if (session.unionid) body.unionid = session.unionid;
    return body;
  }

  function authenticate(headers) {
    const h = headers.authorization || '';
    const m = /^Bearer (.+)$/.exec(h);
    if (!m) return { error: err(401, 'unauthorized', 'an Authorization: Bearer <access_token> header is required') };
    const a = access.get(m[1]);
    if (!a)
      return { error: err(401, 'invalid_token', 'the access token is malformed, badly signed or not an access token') };
    if (a.expired || w.alwaysExpired)
      return { error: err(401, 'token_expired', 'the access token has expired; use /auth/refresh') };
    const session = sessions.get(a.sid);
    if (!session) return { error: err(401, 'session_revoked', 'the session was logged out or revoked; log in again') };
    return { sid: a.sid, session };
  }

  function handle(method, path, query, headers, raw) {
    let body = null;
    if (raw) {
      try {
        body = JSON.parse(raw);
      } catch {
        body = null;
      }
    }
    if (path.startsWith('/auth/')) {
      const route = `${method} ${path}`;
      switch (route) {
        case 'POST /auth/login': {
          const code = body && body.code;
          if (typeof code !== 'string' || !code) return err(400, 'invalid_request', 'invalid request: code missing');
          if (code.startsWith('bad') || usedCodes.has(code)) {
            return err(400, 'invalid_code', 'WeChat rejected the code as invalid or expired; call wx.login() again', {
              wechat_errcode: usedCodes.has(code) ? 40163 : 40029,
            });
          }
          usedCodes.add(code);
          const user = code.split('.')[0];
          const sessionKey = randomBytes(16).toString('base64');
          sessionKeys.set(user, sessionKey);
          serial += 1;
          const sid = `s${serial}`;
          const session = {
            user,
            openid: `o_${user}`,
            unionid: `u_${user}`,
            refresh: `rt.${sid}.${serial}`,
            rotated: new Set(),
            phone: null,
            sessionKey,
          };
          sessions.set(sid, session);
          return { status: 200, body: issue(sid, session) };
        }
        case 'POST /auth/refresh': {
          const rt = body && body.refresh_token;
          if (typeof rt !== 'string' || !rt)
            return err(400, 'invalid_request', 'invalid request: refresh_token missing');
          for (const [sid, session] of sessions) {
            if (session.refresh === rt) {
              session.rotated.add(rt);
              serial += 1;
              session.refresh = `rt.${sid}.${serial}`;
              return { status: 200, body: issue(sid, session) };
            }
            if (session.rotated.has(rt)) {
              sessions.delete(sid);
              return err(
                401,
                'refresh_reused',
                'a refresh token was used twice, so the session was revoked for safety; log in again',
              );
            }
          }
          return err(
            401,
            'invalid_refresh_token',
            'the refresh token is unknown, expired or already replaced; log in again',
          );
        }
        case 'POST /auth/session/rekey': {
          const a = authenticate(headers);
          if (a.error) return a.error;
          const code = body && body.code;
          if (typeof code !== 'string' || !code) return err(400, 'invalid_request', 'invalid request: code missing');
          if (code.startsWith('bad') || usedCodes.has(code)) {
            return err(400, 'invalid_code', 'WeChat rejected the code as invalid or expired; call wx.login() again', {
              wechat_errcode: usedCodes.has(code) ? 40163 : 40029,
            });
          }
          usedCodes.add(code);
          if (code.split('.')[0] !== a.session.user) {
            return err(409, 'openid_mismatch', 'this code belongs to another WeChat user');
          }
          a.session.sessionKey = sessionKeys.get(a.session.user);
          return { status: 204, body: null };
        }
        case 'POST /auth/logout': {
          const a = authenticate(headers);
          if (a.error) return a.error;
          sessions.delete(a.sid);
          return { status: 204, body: null };
        }
        case 'GET /auth/session': {
          const a = authenticate(headers);
          if (a.error) return a.error;
          const out = {
            openid: a.session.openid,
            unionid: a.session.unionid,
            phone_bound: !!a.session.phone,
            expires_at: Math.floor(Date.now() / 1000) + accessTtl,
            session_expires_at: Math.floor(Date.now() / 1000) + refreshTtl,
          };
          return { status: 200, body: out };
        }
        case 'POST /auth/phone': {
          const a = authenticate(headers);
          if (a.error) return a.error;
          let phone;
          if (body && typeof body.code === 'string') {
            const m = /^phone-(\d+)$/.exec(body.code);
            if (!m) return err(400, 'invalid_code', 'WeChat rejected the code', { wechat_errcode: 40029 });
            phone = m[1];
          } else if (body && typeof body.encryptedData === 'string' && typeof body.iv === 'string') {
            let plain = null;
            try {
              plain = JSON.parse(Buffer.from(body.encryptedData, 'base64').toString('utf8'));
            } catch {
              plain = null;
            }
            if (!plain || plain.sk !== a.session.sessionKey) {
              return err(
                400,
                'decrypt_failed',
                "the phone data does not decrypt with this session's session_key: it was most likely rotated by a later wx.login(); log in again, then ask for the phone number again",
              );
            }
            phone = plain.phone;
          } else {
            return err(400, 'invalid_request', 'invalid request: code or encryptedData/iv required');
          }
          a.session.phone = phone;
          if (w.phoneRotates) {
            a.session.rotated.add(a.session.refresh);
            serial += 1;
            a.session.refresh = `rt.${a.sid}.${serial}`;
            return {
              status: 200,
              body: { phoneNumber: phone, purePhoneNumber: phone, countryCode: '86', ...issue(a.sid, a.session) },
            };
          }
          // The contract: the phone and an access token carrying it; the refresh token is not rotated.
          const { refresh_token, refresh_expires_in, ...tokens } = issue(a.sid, a.session);
          return { status: 200, body: { phoneNumber: phone, purePhoneNumber: phone, countryCode: '86', ...tokens } };
        }
        default:
          return err(404, 'not_found', 'no such endpoint');
      }
    }

    // The authenticated proxy: the "origin" echoes what it got.
    const a = authenticate(headers);
    if (a.error) return a.error;
    if (path === '/phone-only' && !a.session.phone) {
      return err(403, 'phone_required', 'bind a phone number (POST /auth/phone) before using this API');
    }
    const echo = {
      method,
      path,
      query,
      headers: { ...headers, authorization: undefined, 'x-wx-openid': a.session.openid },
      body: raw,
    };
    if (a.session.phone) echo.headers['x-wx-phone'] = a.session.phone;
    const status = /^\/status\/(\d{3})$/.exec(path);
    if (status) return { status: Number(status[1]), body: echo };
    if (path === '/origin-401') return { status: 401, body: { code: 401, msg: 'origin says: not a member' } };
    // An OAuth-style origin 401 that looks like the worker's, minus the marker.
    if (path === '/origin-401-oauth')
      return { status: 401, body: { error: 'invalid_token', message: 'origin: token revoked' } };
    return { status: 200, body: echo };
  }

  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const url = new URL(req.url, 'http://fake');
      const path = url.pathname;
      counts[path] = (counts[path] || 0) + 1;
      requests.push({ method: req.method, path, headers: req.headers, body: raw });
      if (w.delay[path]) await new Promise((r) => setTimeout(r, w.delay[path]));
      let out;
      const fail = w.fail[path];
      if (Array.isArray(fail) && fail.length) {
        out = fail.shift();
        if (!fail.length) delete w.fail[path];
      } else if (fail && !Array.isArray(fail)) {
        out = fail;
        delete w.fail[path];
      } else {
        out = handle(req.method, path, url.search.slice(1), req.headers, raw);
      }
      if (out.body === null) {
        res.writeHead(out.status);
        return res.end();
      }
      const text = JSON.stringify(out.body);
      const hdrs = { 'content-type': 'application/json', 'x-fake-worker': 'yes', ...(out.headers || {}) };
      if (out.edge) hdrs['x-wx-edge-error'] = out.edge;
      res.writeHead(out.status, hdrs);
      res.end(text);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  w.url = `http://127.0.0.1:${server.address().port}`;
  w.close = () =>
    new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return w;
}
