/*
 * wx-edge client, session key: keeps the worker's copy of WeChat's
 * session_key in step with the one WeChat uses now.
 *
 * WeChat seals legacy open data (the getPhoneNumber button's encryptedData)
 * with the user's current session_key, which the worker holds for the
 * session. When wx.checkSession fails, WeChat has let that key go: a fresh
 * wx.login code, sent with the access token to POST /auth/session/rekey,
 * gives the session the key code2Session returns now.
 */
'use strict';

var transport = require('./transport.js');
var always = require('./session.js').always;

/**
 * @param {object} o
 * @param {object} o.api        wx, Taro or uni
 * @param {object} o.transport  from transport.createTransport
 * @param {object} o.session    from session.createSession
 */
function createKeyKeeper(o) {
  var api = o.api;
  var net = o.transport;
  var s = o.session;
  /** The single check (and re-key) in flight, shared by concurrent callers. */
  var inFlight = null;

  /** wx.checkSession: true (key alive), false (it failed), or null when the platform has none (H5). */
  function checkSession() {
    if (typeof api.checkSession !== 'function') return Promise.resolve(null);
    return transport.invoke(api, 'checkSession', {}).then(
      function () {
        return true;
      },
      function () {
        return false;
      }
    );
  }

  /**
   * POST /auth/session/rekey through the authorised path: a 401 refreshes
   * (or, if allowed, logs in) and sends again; a 429 / 503 waits and sends
   * again. Every send carries a wx.login code of its own, since a code
   * WeChat may already have spent cannot be sent twice.
   */
  function rekey(allowLogin) {
    return s
      .withToken(function (access) {
        return net.wxLogin().then(function (code) {
          return net.callWorker('POST', '/auth/session/rekey', { code: code }, access);
        });
      }, allowLogin)
      .then(function (res) {
        if (!transport.isOk(res)) throw net.errorFrom(res, '/auth/session/rekey');
        return true;
      });
  }

  /**
   * Resolves true when the worker was given WeChat's current key (a re-key,
   * or a login when there was no session and `allowLogin`), false when
   * wx.checkSession says the key it holds is alive (or the platform has no
   * wx.checkSession). Concurrent callers share one check.
   */
  function ensure(allowLogin) {
    if (inFlight) return inFlight;
    var attempt;
    if (allowLogin && !s.isLoggedIn()) {
      // A login brings a fresh key of its own.
      attempt = s.login().then(function () {
        return true;
      });
    } else {
      attempt = checkSession().then(function (alive) {
        return alive === false ? rekey(allowLogin) : false;
      });
    }
    inFlight = always(attempt, function () {
      inFlight = null;
    });
    return inFlight;
  }

  return { ensure: ensure };
}

module.exports = { createKeyKeeper: createKeyKeeper };
