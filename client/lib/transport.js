/*
 * wx-edge client, transport: the platform's callback APIs as promises
 * (wx.request, wx.login), reading the worker's answers (JSON body, error,
 * Retry-After, "renew" and "retry" signals), and the one retry after the
 * worker's 429 / 503.
 *
 * Knows nothing of tokens or sessions: callers pass the access token in.
 */
'use strict';

var AuthError = require('./error.js').AuthError;

/** Worker 401 codes that mean "this access token no longer works": refresh and retry once. */
var RENEWABLE = ['token_expired', 'invalid_token', 'session_revoked'];

/**
 * The worker's answers that mean "nothing was done, try again shortly": wait
 * for Retry-After and send once more. Status → the worker's error code.
 */
var RETRYABLE = { 429: 'rate_limited', 503: 'store_unavailable' };
var DEFAULT_RETRY_WAIT = 1; // seconds, when Retry-After is missing or unreadable

// ---- platform calls ----------------------------------------------------------

/**
 * Call `api[name]` with success/fail callbacks; also honour a returned
 * promise (Taro). The first outcome wins and a later rejection is consumed,
 * so no "unhandled rejection" is reported.
 */
function invoke(api, name, opts) {
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

// ---- reading responses -------------------------------------------------------

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

function isOk(res) {
  return res.statusCode >= 200 && res.statusCode < 300;
}

/** A response header, whatever case the platform gives its name in (`name` in lower case). */
function headerOf(res, name) {
  var h = res.header || res.headers || {};
  for (var k in h) {
    if (Object.prototype.hasOwnProperty.call(h, k) && k.toLowerCase() === name) return h[k];
  }
  return undefined;
}

/**
 * Retry-After in seconds (delta-seconds or an HTTP date, counted from the
 * clock `now`, a function giving ms), or null when missing or unreadable.
 */
function retryAfterOf(res, now) {
  var v = headerOf(res, 'retry-after');
  if (typeof v !== 'string' && typeof v !== 'number') return null;
  v = String(v).trim();
  if (/^\d+$/.test(v)) return Number(v);
  var date = /[a-z]/i.test(v) ? Date.parse(v) : NaN;
  if (isNaN(date)) return null;
  return Math.max(0, Math.ceil((date - now()) / 1000));
}

/**
 * The AuthError for a response that is not what `what` (an endpoint, for
 * the message) should have answered: the worker's own error body, or
 * bad_response when there is none.
 */
function errorFrom(res, what, now) {
  var b = bodyOf(res);
  if (b && typeof b.error === 'string') {
    var retryAfter = retryAfterOf(res, now);
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

/**
 * The full URL for `auth.request`'s `url`: a path on the worker (`base`), or
 * an absolute URL under it. Throws TypeError for anything else, so the bearer
 * token is only ever sent to the worker.
 */
function resolveUrl(base, url) {
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

// ---- the transport -------------------------------------------------------------

/**
 * The calls a client makes, bound to its options:
 *
 * @param {object} o
 * @param {object} o.api             wx, Taro or uni
 * @param {string} o.base            the worker's URL, without a trailing slash
 * @param {function(): number} o.now clock in ms
 * @param {function(number): Promise} o.sleep  waits that many ms
 * @param {number} o.maxRetryWait    longest wait, in seconds, for a Retry-After
 */
function createTransport(o) {
  var api = o.api;
  var base = o.base;
  var now = o.now;
  var sleep = o.sleep;
  var maxRetryWait = o.maxRetryWait;

  /** wx.request; a fail callback (no HTTP response) becomes AuthError network_error. */
  function send(opts) {
    return invoke(api, 'request', opts).then(
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

  /** wx.login's code; any failure becomes AuthError wx_login_failed. */
  function wxLogin() {
    return invoke(api, 'login', {}).then(
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

  /**
   * Run `attempt` (a function returning a promise of a response). On the
   * worker's retryable answer, wait for its Retry-After (at most
   * maxRetryWait seconds; DEFAULT_RETRY_WAIT when it gave none) and run it
   * once more; a second retryable answer rejects with its AuthError.
   */
  function withRetry(attempt) {
    return attempt().then(function (res) {
      if (!retryable(res)) return res;
      var wait = retryAfterOf(res, now);
      if (wait === null) wait = DEFAULT_RETRY_WAIT;
      return sleep(Math.min(wait, maxRetryWait) * 1000)
        .then(attempt)
        .then(function (res2) {
          if (retryable(res2)) throw errorFrom(res2, 'the worker', now);
          return res2;
        });
    });
  }

  /** A call to one of the worker's /auth/* endpoints (JSON `data` if given, bearer `access` if given). */
  function callWorker(method, path, data, access) {
    var header = {};
    if (data !== undefined) header['Content-Type'] = 'application/json';
    if (access) header.Authorization = 'Bearer ' + access;
    var opts = { url: base + path, method: method, header: header, dataType: 'json' };
    if (data !== undefined) opts.data = data;
    return send(opts);
  }

  return {
    send: send,
    wxLogin: wxLogin,
    withRetry: withRetry,
    callWorker: callWorker,
    /** errorFrom with this transport's clock. */
    errorFrom: function (res, what) {
      return errorFrom(res, what, now);
    },
    /** resolveUrl under this transport's baseUrl. */
    resolveUrl: function (url) {
      return resolveUrl(base, url);
    },
  };
}

module.exports = {
  createTransport: createTransport,
  invoke: invoke,
  bodyOf: bodyOf,
  isOk: isOk,
  headerOf: headerOf,
  retryAfterOf: retryAfterOf,
  errorFrom: errorFrom,
  renewableCode: renewableCode,
  retryable: retryable,
  resolveUrl: resolveUrl,
};
