/*
 * wx-edge client, session: when to log in, refresh or give up, shared among
 * concurrent callers, and what logout() cancels.
 *
 * Holds the client's only mutable state besides the stored record: the single
 * in-flight login and refresh, and an epoch that logout() bumps so a login or
 * refresh that started before it never stores its result.
 */
'use strict';

var AuthError = require('./error.js').AuthError;
var storage = require('./storage.js');
var transport = require('./transport.js');

var bodyOf = transport.bodyOf;
var isOk = transport.isOk;
var renewableCode = transport.renewableCode;

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

/** A refresh failure after which the refresh token can never work again. */
function deadRefresh(e) {
  return e instanceof AuthError && (e.statusCode === 401 || e.statusCode === 400);
}

function notLoggedIn(extra) {
  return new AuthError('not_logged_in', 'no session: call auth.login() first' + (extra || ''));
}

/**
 * The session logic of one client.
 *
 * @param {object} o
 * @param {object} o.store       from storage.createStore
 * @param {object} o.transport   from transport.createTransport
 * @param {function(): number} o.now  clock in ms
 * @param {number} o.margin      seconds before expiry to refresh
 */
function createSession(o) {
  var store = o.store;
  var net = o.transport;
  var now = o.now;
  var margin = o.margin;

  /** Bumped by logout: a login or refresh that started before it must not store its result. */
  var epoch = 0;
  /**
   * Bumped whenever the stored record starts another session (a login, a
   * logout): a refresh stays in the session, so an access token issued for
   * it goes with whatever refresh token the record holds now.
   */
  var generation = 0;
  /** The single in-flight wx.login + /auth/login, and the single in-flight /auth/refresh. */
  var loggingIn = null;
  var refreshing = null;

  function accessExpired(t) {
    return storage.accessExpired(t, now, margin);
  }

  function refreshExpired(t) {
    return storage.refreshExpired(t, now);
  }

  /**
   * Remember the epoch now. The returned `keep(body, sentAt, previous)`
   * stores a token response and returns the record, unless logout() happened
   * since: then it rejects the result with AuthError logged_out.
   */
  function storeUnlessLoggedOut() {
    var startEpoch = epoch;
    function check() {
      if (startEpoch !== epoch) {
        throw new AuthError('logged_out', 'logout() was called while this login or refresh was in flight');
      }
    }
    function keep(body, sentAt, previous) {
      check();
      var r = storage.recordFrom(body, sentAt, previous);
      store.set(r);
      return r;
    }
    keep.check = check;
    return keep;
  }

  /**
   * Store a POST /auth/phone answer to a request sent with record `used` at
   * `mark` (sessionMark() when it was sent); `keep` is from
   * storeUnlessLoggedOut(). Binding does not rotate the refresh token: the
   * answer brings a new access token carrying the phone and no
   * refresh_token, so the refresh token the record holds NOW is kept (a
   * refresh may have rotated it while the binding was in flight; the one
   * sent with must never come back). When a login replaced the session
   * meanwhile, or the record is gone, the answer's access token belongs to
   * no stored session and nothing is stored. An answer that does carry a
   * refresh_token (a worker before bindings stopped rotating) replaces the
   * record as before.
   */
  function keepPhoneAnswer(keep, body, sentAt, used, mark) {
    if (!body || (typeof body.refresh_token === 'string' && body.refresh_token)) return keep(body, sentAt, used);
    var current = store.get();
    if (current && mark === generation) return keep(body, sentAt, current);
    // Nothing to store; still refuse the answer after a logout, as keep() does.
    keep.check();
    return current;
  }

  /** What keepPhoneAnswer needs to know of the session a request is sent in. */
  function sessionMark() {
    return generation;
  }

  /** Forget the tokens and invalidate whatever is in flight. */
  function end() {
    epoch++;
    generation++;
    store.clear();
  }

  // ---- login and refresh ---------------------------------------------------

  /**
   * wx.login + POST /auth/login; concurrent callers share one. A retry (the
   * worker's 429 / 503) starts with a new wx.login: WeChat may already have
   * used up the first code.
   */
  function login() {
    if (loggingIn) return loggingIn;
    var keep = storeUnlessLoggedOut();
    var sentAt = 0;
    var attempt = net
      .withRetry(function () {
        return net.wxLogin().then(function (code) {
          sentAt = now();
          return net.callWorker('POST', '/auth/login', { code: code });
        });
      })
      .then(function (res) {
        if (!isOk(res)) throw net.errorFrom(res, '/auth/login');
        var r = keep(bodyOf(res), sentAt, null);
        generation++;
        return r;
      });
    loggingIn = always(attempt, function () {
      loggingIn = null;
    });
    return loggingIn;
  }

  /** POST /auth/refresh with the current refresh token; concurrent callers share one. */
  function refresh() {
    if (refreshing) return refreshing;
    var t = store.get();
    if (!t) return Promise.reject(notLoggedIn());
    var keep = storeUnlessLoggedOut();
    var sentAt = now();
    var attempt = net
      .withRetry(function () {
        return net.callWorker('POST', '/auth/refresh', { refresh_token: t.refresh_token });
      })
      .then(function (res) {
        if (isOk(res)) return keep(bodyOf(res), sentAt, t);
        var err = net.errorFrom(res, '/auth/refresh');
        // The session is gone (refresh_reused revoked it, or it was rotated,
        // logged out or expired): these tokens are useless, forget them.
        if (deadRefresh(err) && store.get() === t) store.clear();
        throw err;
      });
    refreshing = always(attempt, function () {
      refreshing = null;
    });
    return refreshing;
  }

  /**
   * Join (or start) the refresh; when the refresh token turns out dead, log
   * in again if allowed, else reject with the refresh's error.
   */
  function refreshThenLogin(allowLogin) {
    var t = store.get();
    return refresh().catch(function (e) {
      if (!deadRefresh(e)) throw e;
      var state = store.get();
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
    var t = store.get();
    if (!t || refreshExpired(t)) {
      if (t) store.clear();
      return allowLogin ? login() : Promise.reject(notLoggedIn());
    }
    return refreshThenLogin(allowLogin);
  }

  /** Tokens fit to send now: logs in (if allowed) or refreshes as needed. */
  function usable(allowLogin) {
    if (loggingIn) return loggingIn;
    var t = store.get();
    if (!t) return allowLogin ? login() : Promise.reject(notLoggedIn());
    if (refreshing || accessExpired(t) || refreshExpired(t)) return renew(allowLogin);
    return Promise.resolve(t);
  }

  /** After a renewable 401 for `used`: fresh tokens, unless someone already replaced them. */
  function renewAfter401(used, allowLogin) {
    var state = store.get();
    if (!loggingIn && state && state.access_token !== used.access_token) return usable(allowLogin);
    return renew(allowLogin);
  }

  /**
   * Send with a bearer token: `sendWith(access)` returns a promise of a
   * response. On the worker's renewable 401, renew and send once more; a
   * renewable 401 on the second try rejects with AuthError. Each send is
   * retried once on the worker's 429 / 503 (withRetry).
   */
  function withToken(sendWith, allowLogin) {
    return usable(allowLogin).then(function (t) {
      return net
        .withRetry(function () {
          return sendWith(t.access_token);
        })
        .then(function (res) {
          if (!renewableCode(res)) return res;
          return renewAfter401(t, allowLogin).then(function (t2) {
            return net
              .withRetry(function () {
                return sendWith(t2.access_token);
              })
              .then(function (res2) {
                if (renewableCode(res2)) throw net.errorFrom(res2, 'the worker');
                return res2;
              });
          });
        });
    });
  }

  // ---- logout ----------------------------------------------------------------

  /**
   * Wait for the login or refresh in flight, POST /auth/logout with a usable
   * bearer token (never logging in for it), then forget the tokens whatever
   * the answer. A 401 or no session means it is already gone: that resolves.
   */
  function logout() {
    var pending = [loggingIn, refreshing].filter(Boolean).map(function (p) {
      return p.catch(function () {});
    });
    return Promise.all(pending).then(function () {
      if (!store.get()) {
        end();
        return;
      }
      return withToken(function (access) {
        return net.callWorker('POST', '/auth/logout', undefined, access);
      }, false).then(
        function (res) {
          end();
          // 401: the session is already gone, which is what logout wanted.
          if (!isOk(res) && res.statusCode !== 401) throw net.errorFrom(res, '/auth/logout');
        },
        function (e) {
          end();
          if (e instanceof AuthError && (e.statusCode === 401 || e.code === 'not_logged_in')) return;
          throw e;
        }
      );
    });
  }

  return {
    login: login,
    usable: usable,
    withToken: withToken,
    storeUnlessLoggedOut: storeUnlessLoggedOut,
    keepPhoneAnswer: keepPhoneAnswer,
    sessionMark: sessionMark,
    logout: logout,
    /** Tokens are stored and the refresh token has not expired (no request). */
    isLoggedIn: function () {
      var t = store.get();
      return !!t && !refreshExpired(t);
    },
  };
}

module.exports = { createSession: createSession, notLoggedIn: notLoggedIn };
