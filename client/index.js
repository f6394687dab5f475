/*
 * wx-edge client: login, token storage, refresh and authenticated requests for
 * a WeChat mini-program (or Taro / uni-app) talking to a wx-edge worker.
 *
 * Dependency-free CommonJS, written for the JavaScript engines of mini-program
 * base libraries (no optional chaining, no `??`, no object spread). The ES
 * module entry `index.mjs` re-exports this file, so `require` and `import`
 * share one `AuthError` class.
 *
 * The platform object (`wx`, `Taro`, `uni`) is only ever called with
 * success/fail callbacks, which all three support; when a call also returns a
 * promise (Taro), the first of the two outcomes wins and the promise's
 * rejection is consumed, so no "unhandled rejection" is reported.
 */
'use strict';

var DEFAULT_STORAGE_KEY = 'wx-edge.auth';
var DEFAULT_REFRESH_MARGIN = 30; // seconds

/** Worker 401 codes that mean "this access token no longer works": refresh and retry once. */
var RENEWABLE = ['token_expired', 'invalid_token', 'session_revoked'];

/**
 * The worker's answers that mean "nothing was done, try again shortly": wait
 * for Retry-After and send once more. Status → the worker's error code.
 */
var RETRYABLE = { 429: 'rate_limited', 503: 'store_unavailable' };
var DEFAULT_RETRY_WAIT = 1; // seconds, when Retry-After is missing or unreadable
var DEFAULT_MAX_RETRY_WAIT = 10; // seconds: a longer Retry-After is cut to this

/**
 * Every failure the client reports.
 *
 * - `code`: the worker's `error` code (`invalid_code`, `decrypt_failed`, ...) or
 *   one of the client's own (`network_error`, `wx_login_failed`,
 *   `phone_denied`, `not_logged_in`, `logged_out`, `bad_response`,
 *   `invalid_request`).
 * - `message`: the worker's message, passed through unchanged, or the client's.
 * - `statusCode`: the HTTP status, or 0 when there was no HTTP response.
 * - `wechatErrcode`: WeChat's errcode, when the worker reported one.
 * - `errMsg`: the platform's `errMsg` (wx.request / wx.login / getPhoneNumber), when there was one.
 * - `retryAfter`: seconds, from the worker's Retry-After (429 / 503), when it sent one.
 */
class AuthError extends Error {
  constructor(code, message, details) {
    super(message || code);
    var d = details || {};
    this.name = 'AuthError';
    this.code = code;
    this.statusCode = typeof d.statusCode === 'number' ? d.statusCode : 0;
    if (d.wechatErrcode !== undefined && d.wechatErrcode !== null) this.wechatErrcode = d.wechatErrcode;
    if (d.errMsg !== undefined) this.errMsg = d.errMsg;
    if (typeof d.retryAfter === 'number') this.retryAfter = d.retryAfter;
  }
}

/**
 * Create a client.
 *
 * @param {object} options
 * @param {string} options.baseUrl        the worker's URL, e.g. 'https://edge.example.com'
 * @param {object} options.api            wx, Taro or uni
 * @param {string} [options.storageKey]   default 'wx-edge.auth'
 * @param {function(): number} [options.now]  clock in ms, default Date.now
 * @param {number} [options.refreshMargin]    seconds before expiry to refresh, default 30
 * @param {number} [options.maxRetryWait]     longest wait, in seconds, for the worker's Retry-After, default 10
 * @param {function(number): Promise} [options.sleep]  waits that many ms, default setTimeout (inject one in tests)
 */
function createAuth(options) {
  var o = options || {};
  if (typeof o.baseUrl !== 'string' || !/^https?:\/\/[^/]/i.test(o.baseUrl)) {
    throw new TypeError('createAuth: baseUrl is required (e.g. "https://edge.example.com")');
  }
  var api = o.api;
  if (!api || typeof api.request !== 'function' || typeof api.login !== 'function') {
    throw new TypeError('createAuth: api is required (pass wx, Taro or uni)');
  }
  var base = o.baseUrl.replace(/\/+$/, '');
  var storageKey = typeof o.storageKey === 'string' && o.storageKey ? o.storageKey : DEFAULT_STORAGE_KEY;
  var now =
    typeof o.now === 'function'
      ? o.now
      : function () {
          return Date.now();
        };
  var margin = typeof o.refreshMargin === 'number' && o.refreshMargin >= 0 ? o.refreshMargin : DEFAULT_REFRESH_MARGIN;
  var maxRetryWait =
    typeof o.maxRetryWait === 'number' && o.maxRetryWait >= 0 ? o.maxRetryWait : DEFAULT_MAX_RETRY_WAIT;
  var sleep =
    typeof o.sleep === 'function'
      ? o.sleep
      : function (ms) {
          return new Promise(function (resolve) {
            setTimeout(resolve, ms);
          });
        };

  /** The stored token record, or null. Loaded once; every change is written through. */
  var state = load();
  /** Bumped by logout: a login or refresh that started before it must not store its result. */
  var epoch = 0;
  /** The single in-flight wx.login + /auth/login, and the single in-flight /auth/refresh. */
  var loggingIn = null;
  var refreshing = null;

  // ---- storage ------------------------------------------------------------

  function load() {
    var raw;
    try {
      raw = typeof api.getStorageSync === 'function' ? api.getStorageSync(storageKey) : null;
    } catch (e) {
      return null;
    }
    if (typeof raw === 'string' && raw) {
      try {
        raw = JSON.parse(raw);
      } catch (e) {
        return null;
      }
    }
    if (!raw || typeof raw !== 'object') return null;
    if (typeof raw.access_token !== 'string' || typeof raw.refresh_token !== 'string') return null;
    return raw;
  }

  function save(record) {
    state = record;
    try {
      if (typeof api.setStorageSync === 'function') api.setStorageSync(storageKey, record);
    } catch (e) {
      // Storage full or unavailable: keep the session in memory for this run.
    }
  }

  function clear() {
    state = null;
    try {
      if (typeof api.removeStorageSync === 'function') api.removeStorageSync(storageKey);
    } catch (e) {
      // nothing more to do
    }
  }

  /** Turn a token response (login, refresh, phone) into the stored record. */
  function record(body, sentAt, previous) {
    if (!body || typeof body.access_token !== 'string' || !body.access_token) {
      throw new AuthError('bad_response', 'the worker answered without an access_token');
    }
    var prev = previous || {};
    var refreshToken =
      typeof body.refresh_token === 'string' && body.refresh_token ? body.refresh_token : prev.refresh_token;
    if (typeof refreshToken !== 'string' || !refreshToken) {
      throw new AuthError('bad_response', 'the worker answered without a refresh_token');
    }
    var expiresIn = Number(body.expires_in) > 0 ? Number(body.expires_in) : 0;
    var r = {
      access_token: body.access_token,
      token_type: body.token_type || 'Bearer',
      expires_in: expiresIn,
      expires_at: sentAt + expiresIn * 1000,
      refresh_token: refreshToken,
      refresh_expires_at:
        Number(body.refresh_expires_in) > 0
          ? sentAt + Number(body.refresh_expires_in) * 1000
          : prev.refresh_expires_at || 0,
      openid: body.openid || prev.openid,
      phone_bound: typeof body.phone_bound === 'boolean' ? body.phone_bound : !!prev.phone_bound,
    };
    var unionid = body.unionid || prev.unionid;
    if (unionid) r.unionid = unionid;
    return r;
  }

  /** Store a token response unless logout() happened since the call started. */
  function storeFrom(body, sentAt, startEpoch, previous) {
    if (startEpoch !== epoch) {
      throw new AuthError('logged_out', 'logout() was called while this login or refresh was in flight');
    }
    var r = record(body, sentAt, previous);
    save(r);
    return r;
  }

  function copy(r) {
    return r ? Object.freeze(Object.assign({}, r)) : null;
  }

  // ---- clock ---------------------------------------------------------------

  /** The access token is (about to be) expired: refresh before using it. */
  function accessExpired(t) {
    if (!t.expires_in || !t.expires_at) return false; // unknown lifetime: rely on the 401
    // Never let the margin eat more than half of a short-lived token.
    var m = Math.min(margin, (t.expires_in || 0) / 2);
    return now() >= t.expires_at - m * 1000;
  }

  function refreshExpired(t) {
    return !!t.refresh_expires_at && now() >= t.refresh_expires_at;
  }

  // ---- platform calls ------------------------------------------------------

  /** Call a platform API with success/fail; also honour a returned promise. */
  function invoke(name, opts) {
    return new Promise(function (resolve, reject) {
      var settled = false;
      function ok(v) {
        if (!settled) {
          settled = true;
          resolve(v);
        }
      }
      function ko(e) {
        if (!settled) {
          settled = true;
          reject(e);
        }
      }
      var ret;
      try {
        ret = api[name](Object.assign({}, opts, { success: ok, fail: ko }));
      } catch (e) {
        ko(e);
        return;
      }
      if (ret && typeof ret.then === 'function') ret.then(ok, ko);
    });
  }

  function errMsgOf(e) {
    if (e && typeof e.errMsg === 'string') return e.errMsg;
    if (e && typeof e.message === 'string') return e.message;
    return String(e);
  }

  /** wx.request; a fail callback (no HTTP response) becomes AuthError network_error. */
  function send(opts) {
    return invoke('request', opts).then(
      function (res) {
        if (!res || typeof res.statusCode !== 'number') {
          throw new AuthError('network_error', 'request returned no HTTP status', { errMsg: res && res.errMsg });
        }
        return res;
      },
      function (e) {
        if (e instanceof AuthError) throw e;
        var msg = errMsgOf(e);
        throw new AuthError('network_error', 'request to ' + opts.url + ' failed: ' + msg, { errMsg: msg });
      }
    );
  }

  function wxLogin() {
    return invoke('login', {}).then(
      function (res) {
        if (!res || typeof res.code !== 'string' || !res.code) {
          var m = (res && res.errMsg) || 'no code';
          throw new AuthError('wx_login_failed', 'wx.login gave no code: ' + m, { errMsg: res && res.errMsg });
        }
        return res.code;
      },
      function (e) {
        var msg = errMsgOf(e);
        throw new AuthError('wx_login_failed', 'wx.login failed: ' + msg, { errMsg: msg });
      }
    );
  }

  /** The JSON body of a response, or null (a string body is parsed when it is JSON). */
  function bodyOf(res) {
    var d = res.data;
    if (typeof d === 'string') {
      try {
        d = JSON.parse(d);
      } catch (e) {
        return null;
      }
    }
    return d && typeof d === 'object' ? d : null;
  }

  /**
   * `promise`, with `done` run however it settles (Promise.prototype.finally
   * is missing on older mini-program engines).
   */
  function always(promise, done) {
    return promise.then(
      function (r) {
        done();
        return r;
      },
      function (e) {
        done();
        throw e;
      }
    );
  }

  function ok(res) {
    return res.statusCode >= 200 && res.statusCode < 300;
  }

  function errorFrom(res, what) {
    var b = bodyOf(res);
    if (b && typeof b.error === 'string') {
      var retryAfter = retryAfterOf(res);
      return new AuthError(b.error, typeof b.message === 'string' && b.message ? b.message : b.error, {
        statusCode: res.statusCode,
        wechatErrcode: b.wechat_errcode,
        retryAfter: retryAfter === null ? undefined : retryAfter,
      });
    }
    return new AuthError('bad_response', what + ' answered HTTP ' + res.statusCode + ' without an error body', {
      statusCode: res.statusCode,
    });
  }

  /** A response header, whatever case the platform gives its name in. */
  function headerOf(res, name) {
    var h = res.header || res.headers || {};
    for (var k in h) {
      if (Object.prototype.hasOwnProperty.call(h, k) && k.toLowerCase() === name) return h[k];
    }
    return undefined;
  }

  /**
   * The worker's own 401 for a dead access token: the code, or null for
   * anything else. The worker marks its errors with X-WX-Edge-Error; a 401
   * from the origin (passed through unchanged) never triggers a refresh.
   */
  function renewableCode(res) {
    if (res.statusCode !== 401) return null;
    if (!headerOf(res, 'x-wx-edge-error')) return null;
    var b = bodyOf(res);
    if (!b || typeof b.error !== 'string' || typeof b.message !== 'string') return null;
    return RENEWABLE.indexOf(b.error) === -1 ? null : b.error;
  }

  /**
   * The worker's own 429 rate_limited or 503 store_unavailable (marked with
   * X-WX-Edge-Error, like its 401s): it did nothing and the request may be
   * sent again. An origin's 429 or 503 is its own business and never retried.
   */
  function retryable(res) {
    var code = RETRYABLE[res.statusCode];
    if (!code || !headerOf(res, 'x-wx-edge-error')) return false;
    var b = bodyOf(res);
    return !!b && b.error === code;
  }

  /** Retry-After in seconds (delta-seconds or an HTTP date), or null when missing or unreadable. */
  function retryAfterOf(res) {
    var v = headerOf(res, 'retry-after');
    if (typeof v !== 'string' && typeof v !== 'number') return null;
    v = String(v).trim();
    if (/^\d+$/.test(v)) return Number(v);
    var date = /[a-z]/i.test(v) ? Date.parse(v) : NaN;
    if (isNaN(date)) return null;
    return Math.max(0, Math.ceil((date - now()) / 1000));
  }

  /**
   * Run `attempt` (a function returning a promise of a response). On the
   * worker's retryable answer, wait for its Retry-After (at most
   * maxRetryWait seconds; DEFAULT_RETRY_WAIT when it gave none) and run it
   * once more; a second retryable answer rejects with its AuthError.
   */
  function withRetry(attempt) {
    return attempt().then(function (res) {
      if (!retryable(res)) return res;
      var wait = retryAfterOf(res);
      if (wait === null) wait = DEFAULT_RETRY_WAIT;
      return sleep(Math.min(wait, maxRetryWait) * 1000)
        .then(attempt)
        .then(function (res2) {
          if (retryable(res2)) throw errorFrom(res2, 'the worker');
          return res2;
        });
    });
  }

  /** A call to one of the worker's /auth/* endpoints. */
  function callWorker(method, path, data, access) {
    var header = {};
    if (data !== undefined) header['Content-Type'] = 'application/json';
    if (access) header.Authorization = 'Bearer ' + access;
    var opts = { url: base + path, method: method, header: header, dataType: 'json' };
    if (data !== undefined) opts.data = data;
    return send(opts);
  }

  // ---- login and refresh ---------------------------------------------------

  /**
   * wx.login + POST /auth/login; concurrent callers share one. A retry (the
   * worker's 429 / 503) starts with a new wx.login: WeChat may already have
   * used up the first code.
   */
  function login() {
    if (loggingIn) return loggingIn;
    var startEpoch = epoch;
    var sentAt = 0;
    var attempt = withRetry(function () {
      return wxLogin().then(function (code) {
        sentAt = now();
        return callWorker('POST', '/auth/login', { code: code });
      });
    }).then(function (res) {
      if (!ok(res)) throw errorFrom(res, '/auth/login');
      return storeFrom(bodyOf(res), sentAt, startEpoch, null);
    });
    loggingIn = always(attempt, function () {
      loggingIn = null;
    });
    return loggingIn;
  }

  /** A refresh failure after which the refresh token can never work again. */
  function deadRefresh(e) {
    return e instanceof AuthError && (e.statusCode === 401 || e.statusCode === 400);
  }

  /** POST /auth/refresh with the current refresh token; concurrent callers share one. */
  function refresh() {
    if (refreshing) return refreshing;
    var t = state;
    if (!t) return Promise.reject(notLoggedIn());
    var startEpoch = epoch;
    var sentAt = now();
    var attempt = withRetry(function () {
      return callWorker('POST', '/auth/refresh', { refresh_token: t.refresh_token });
    }).then(function (res) {
      if (ok(res)) return storeFrom(bodyOf(res), sentAt, startEpoch, t);
      var err = errorFrom(res, '/auth/refresh');
      // The session is gone (refresh_reused revoked it, or it was rotated,
      // logged out or expired): these tokens are useless, forget them.
      if (deadRefresh(err) && state === t) clear();
      throw err;
    });
    refreshing = always(attempt, function () {
      refreshing = null;
    });
    return refreshing;
  }

  function notLoggedIn(extra) {
    return new AuthError('not_logged_in', 'no session: call auth.login() first' + (extra || ''));
  }

  /**
   * Join (or start) the refresh; when the refresh token turns out dead, log
   * in again if allowed, else reject with the refresh's error.
   */
  function refreshThenLogin(allowLogin) {
    var t = state;
    return refresh().catch(function (e) {
      if (!deadRefresh(e)) throw e;
      // Someone else already logged in again while this refresh failed.
      if (state && state !== t && !accessExpired(state)) return state;
      if (!allowLogin) throw e;
      return login();
    });
  }

  /** New tokens for a session whose access token is expired or was refused. */
  function renew(allowLogin) {
    if (loggingIn) return loggingIn;
    if (refreshing) return refreshThenLogin(allowLogin);
    var t = state;
    if (!t || refreshExpired(t)) {
      if (t) clear();
      return allowLogin ? login() : Promise.reject(notLoggedIn());
    }
    return refreshThenLogin(allowLogin);
  }

  /** Tokens fit to send now: logs in (if allowed) or refreshes as needed. */
  function usable(allowLogin) {
    if (loggingIn) return loggingIn;
    var t = state;
    if (!t) return allowLogin ? login() : Promise.reject(notLoggedIn());
    if (refreshing || accessExpired(t) || refreshExpired(t)) return renew(allowLogin);
    return Promise.resolve(t);
  }

  /** After a renewable 401 for `used`: fresh tokens, unless someone already replaced them. */
  function renewAfter401(used, allowLogin) {
    if (!loggingIn && state && state.access_token !== used.access_token) return usable(allowLogin);
    return renew(allowLogin);
  }

  /**
   * Send with a bearer token; on the worker's renewable 401, renew and send
   * once more. A renewable 401 on the second try rejects with AuthError.
   * Each send is retried once on the worker's 429 / 503 (withRetry).
   */
  function withToken(sendWith, allowLogin) {
    return usable(allowLogin).then(function (t) {
      return withRetry(function () {
        return sendWith(t.access_token);
      }).then(function (res) {
        if (!renewableCode(res)) return res;
        return renewAfter401(t, allowLogin).then(function (t2) {
          return withRetry(function () {
            return sendWith(t2.access_token);
          }).then(function (res2) {
            if (renewableCode(res2)) throw errorFrom(res2, 'the worker');
            return res2;
          });
        });
      });
    });
  }

  // ---- the public API ---------------------------------------------------------

  function resolveUrl(url) {
    if (typeof url !== 'string' || !url) throw new TypeError('auth.request: url is required');
    if (/^[a-z][a-z0-9+.-]*:/i.test(url)) {
      var b = base.toLowerCase();
      var u = url.toLowerCase();
      if (u === b || u.indexOf(b + '/') === 0 || u.indexOf(b + '?') === 0) return url;
      throw new TypeError(
        'auth.request: ' + url + ' is not under baseUrl ' + base + '; the token is only sent to the worker'
      );
    }
    return base + (url.charAt(0) === '/' ? '' : '/') + url;
  }

  function request(options) {
    var opts = options || {};
    var url;
    try {
      url = resolveUrl(opts.url);
    } catch (e) {
      return Promise.reject(e);
    }
    var userHeader = opts.header && typeof opts.header === 'object' ? opts.header : {};
    function sendWith(access) {
      var header = {};
      Object.keys(userHeader).forEach(function (k) {
        if (k.toLowerCase() !== 'authorization') header[k] = userHeader[k];
      });
      header.Authorization = 'Bearer ' + access;
      var o = Object.assign({}, opts, { url: url, header: header });
      delete o.success;
      delete o.fail;
      delete o.complete;
      return send(o);
    }
    return withToken(sendWith, true);
  }

  function ensureLogin() {
    return usable(true).then(copy);
  }

  function getSession() {
    return withToken(function (access) {
      return callWorker('GET', '/auth/session', undefined, access);
    }, false).then(function (res) {
      if (!ok(res)) throw errorFrom(res, '/auth/session');
      var b = bodyOf(res);
      if (!b)
        throw new AuthError('bad_response', '/auth/session answered without a JSON body', {
          statusCode: res.statusCode,
        });
      if (state && typeof b.phone_bound === 'boolean' && b.phone_bound !== state.phone_bound) {
        save(Object.assign({}, state, { phone_bound: b.phone_bound }));
      }
      return b;
    });
  }

  function bindPhone(detail) {
    var d = detail;
    // Accept the whole event as well as event.detail.
    if (d && typeof d === 'object' && d.detail && typeof d.detail === 'object' && !d.code && !d.encryptedData)
      d = d.detail;
    var body;
    var allowLogin;
    if (d && typeof d.code === 'string' && d.code) {
      // Current API: the phone code does not depend on the session_key.
      body = { code: d.code };
      allowLogin = true;
    } else if (d && typeof d.encryptedData === 'string' && d.encryptedData && typeof d.iv === 'string' && d.iv) {
      // Legacy API: encrypted with the session_key of the CURRENT session, so
      // never wx.login here (it would rotate the key); a refresh keeps it.
      body = { encryptedData: d.encryptedData, iv: d.iv };
      allowLogin = false;
    } else if (d && typeof d.errMsg === 'string' && /fail/i.test(d.errMsg)) {
      return Promise.reject(
        new AuthError('phone_denied', 'the user did not share a phone number (' + d.errMsg + ')', { errMsg: d.errMsg })
      );
    } else {
      return Promise.reject(
        new AuthError(
          'invalid_request',
          'bindPhone needs the detail of a getPhoneNumber event: {code} or {encryptedData, iv}'
        )
      );
    }
    var sentAt = now();
    var startEpoch = epoch;
    var used = null;
    return withToken(function (access) {
      sentAt = now();
      used = state;
      return callWorker('POST', '/auth/phone', body, access);
    }, allowLogin).then(
      function (res) {
        if (!ok(res)) throw errorFrom(res, '/auth/phone');
        var b = bodyOf(res);
        storeFrom(b, sentAt, startEpoch, used);
        var out = { phoneNumber: b.phoneNumber, purePhoneNumber: b.purePhoneNumber, countryCode: b.countryCode };
        return out;
      },
      function (e) {
        if (!allowLogin && e instanceof AuthError && e.code === 'not_logged_in') {
          throw notLoggedIn(
            '; bindPhone never calls wx.login for encryptedData/iv, because a new login rotates the session_key they were encrypted with'
          );
        }
        throw e;
      }
    );
  }

  function logout() {
    var pending = [loggingIn, refreshing].filter(Boolean).map(function (p) {
      return p.catch(function () {});
    });
    return Promise.all(pending).then(function () {
      if (!state) {
        epoch++;
        clear();
        return;
      }
      return withToken(function (access) {
        return callWorker('POST', '/auth/logout', undefined, access);
      }, false).then(
        function (res) {
          epoch++;
          clear();
          // 401: the session is already gone, which is what logout wanted.
          if (!ok(res) && res.statusCode !== 401) throw errorFrom(res, '/auth/logout');
        },
        function (e) {
          epoch++;
          clear();
          if (e instanceof AuthError && (e.statusCode === 401 || e.code === 'not_logged_in')) return;
          throw e;
        }
      );
    });
  }

  return {
    login: function () {
      return login().then(copy);
    },
    ensureLogin: ensureLogin,
    request: request,
    bindPhone: bindPhone,
    getSession: getSession,
    logout: logout,
    isLoggedIn: function () {
      return !!state && !refreshExpired(state);
    },
    tokens: function () {
      return copy(state);
    },
  };
}

module.exports = { createAuth: createAuth, AuthError: AuthError, DEFAULT_STORAGE_KEY: DEFAULT_STORAGE_KEY };
// `require(...).default` works too, for code compiled from `import auth from ...`.
module.exports.default = module.exports;
