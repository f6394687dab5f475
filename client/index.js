/*
 * wx-edge client: login, token storage, refresh and authenticated requests for
 * a WeChat mini-program (or Taro / uni-app) talking to a wx-edge worker.
 *
 * Dependency-free CommonJS, written for the JavaScript engines of mini-program
 * base libraries (no optional chaining, no `??`, no object spread). The ES
 * module entry `index.mjs` re-exports this file, so `require` and `import`
 * share one `AuthError` class.
 *
 * This file reads the options and holds the public API; the parts live in
 * lib/ (published with it, each plain CommonJS):
 *
 * - lib/storage.js    the token record, its expiry, its storage key; the
 *                     logouts the worker has not confirmed, under their own key
 * - lib/transport.js  wx.request / wx.login as promises, reading the worker's
 *                     answers, the one retry after its 429 / 503
 * - lib/session.js    login, refresh and logout, shared among concurrent callers;
 *                     the retries of a pending logout
 * - lib/sessionkey.js ensureSessionKey: wx.checkSession, and a re-key when it fails
 * - lib/error.js      AuthError
 *
 * The platform object (`wx`, `Taro`, `uni`) is only ever called with
 * success/fail callbacks, which all three support; when a call also returns a
 * promise (Taro), the first of the two outcomes wins and the promise's
 * rejection is consumed, so no "unhandled rejection" is reported.
 */
'use strict';

var AuthError = require('./lib/error.js').AuthError;
var storage = require('./lib/storage.js');
var transport = require('./lib/transport.js');
var session = require('./lib/session.js');
var sessionkey = require('./lib/sessionkey.js');

var DEFAULT_STORAGE_KEY = 'wx-edge.auth';
var PENDING_LOGOUT_SUFFIX = '.logout'; // storageKey + this: the logouts the worker has not confirmed
var DEFAULT_REFRESH_MARGIN = 30; // seconds
var DEFAULT_MAX_RETRY_WAIT = 10; // seconds: a longer Retry-After is cut to this

var bodyOf = transport.bodyOf;
var isOk = transport.isOk;
var frozenCopy = storage.frozenCopy;

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

  /** The stored token record: loaded once, here; every change is written through. */
  var store = storage.createStore(api, storageKey);
  var net = transport.createTransport({ api: api, base: base, now: now, sleep: sleep, maxRetryWait: maxRetryWait });
  /** Logouts the worker has not confirmed yet: kept under a key of their own, so a new login never loses them. */
  var pending = storage.createPendingStore(api, storageKey + PENDING_LOGOUT_SUFFIX);
  var s = session.createSession({ store: store, transport: net, now: now, margin: margin, pending: pending });
  // App start: finish what an earlier run could not.
  s.resumePendingLogouts();
  var keys = sessionkey.createKeyKeeper({ api: api, transport: net, session: s });

  function request(options) {
    var opts = options || {};
    var url;
    try {
      url = net.resolveUrl(opts.url);
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
      return net.send(o);
    }
    return s.withToken(sendWith, true);
  }

  function ensureLogin() {
    return s.usable(true).then(frozenCopy);
  }

  function getSession() {
    return s
      .withToken(function (access) {
        return net.callWorker('GET', '/auth/session', undefined, access);
      }, false)
      .then(function (res) {
        if (!isOk(res)) throw net.errorFrom(res, '/auth/session');
        var b = bodyOf(res);
        if (!b)
          throw new AuthError('bad_response', '/auth/session answered without a JSON body', {
            statusCode: res.statusCode,
          });
        var state = store.get();
        if (state && typeof b.phone_bound === 'boolean' && b.phone_bound !== state.phone_bound) {
          store.set(Object.assign({}, state, { phone_bound: b.phone_bound }));
        }
        return b;
      });
  }

  function bindPhone(detail) {
    var p = phoneRequest(detail);
    if (p.error) return Promise.reject(p.error);
    var allowLogin = p.allowLogin;
    var sentAt = now();
    var keep = s.storeUnlessLoggedOut();
    var used = null;
    var mark = null;
    // Legacy data is sealed with WeChat's current session_key: when
    // wx.checkSession says the worker's copy is dead, re-key first.
    var keyReady = allowLogin || !s.isLoggedIn() ? Promise.resolve() : keys.ensure(false);
    return keyReady
      .then(function () {
        return s.withToken(function (access) {
          sentAt = now();
          used = store.get();
          mark = s.sessionMark();
          return net.callWorker('POST', '/auth/phone', p.body, access);
        }, allowLogin);
      })
      .then(
        function (res) {
          if (!isOk(res)) throw net.errorFrom(res, '/auth/phone');
          var b = bodyOf(res);
          // No refresh_token in the answer: binding does not rotate it, and
          // the one the client holds is kept.
          s.keepPhoneAnswer(keep, b, sentAt, used, mark);
          var out = { phoneNumber: b.phoneNumber, purePhoneNumber: b.purePhoneNumber, countryCode: b.countryCode };
          return out;
        },
        function (e) {
          if (!allowLogin && e instanceof AuthError && e.code === 'not_logged_in') {
            throw session.notLoggedIn(
              '; bindPhone never calls wx.login for encryptedData/iv, because a new login rotates the session_key they were encrypted with'
            );
          }
          throw e;
        }
      );
  }

  return {
    login: function () {
      return s.login().then(frozenCopy);
    },
    ensureLogin: ensureLogin,
    request: request,
    bindPhone: bindPhone,
    ensureSessionKey: function () {
      return keys.ensure(true);
    },
    getSession: getSession,
    logout: s.logout,
    isLoggedIn: s.isLoggedIn,
    hasPendingLogout: s.hasPendingLogout,
    tokens: function () {
      return frozenCopy(store.get());
    },
  };
}

/**
 * What bindPhone sends for a getPhoneNumber detail (or the whole event):
 * `{body, allowLogin}`, or `{error}` when there is nothing to send.
 */
function phoneRequest(detail) {
  var d = detail;
  // Accept the whole event as well as event.detail.
  if (d && typeof d === 'object' && d.detail && typeof d.detail === 'object' && !d.code && !d.encryptedData)
    d = d.detail;
  if (d && typeof d.code === 'string' && d.code) {
    // Current API: the phone code does not depend on the session_key.
    return { body: { code: d.code }, allowLogin: true };
  }
  if (d && typeof d.encryptedData === 'string' && d.encryptedData && typeof d.iv === 'string' && d.iv) {
    // Legacy API: encrypted with the session_key of the CURRENT session, so
    // never wx.login here (it would rotate the key); a refresh keeps it.
    return { body: { encryptedData: d.encryptedData, iv: d.iv }, allowLogin: false };
  }
  if (d && typeof d.errMsg === 'string' && /fail/i.test(d.errMsg)) {
    return {
      error: new AuthError('phone_denied', 'the user did not share a phone number (' + d.errMsg + ')', {
        errMsg: d.errMsg,
      }),
    };
  }
  return {
    error: new AuthError(
      'invalid_request',
      'bindPhone needs the detail of a getPhoneNumber event: {code} or {encryptedData, iv}'
    ),
  };
}

module.exports = { createAuth: createAuth, AuthError: AuthError, DEFAULT_STORAGE_KEY: DEFAULT_STORAGE_KEY };
// `require(...).default` works too, for code compiled from `import auth from ...`.
module.exports.default = module.exports;
