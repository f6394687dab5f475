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

/** Background retries of a pending logout wait 1 s after the first failed try, doubling up to 5 min. */
var BACKOFF_BASE = 1000;
var BACKOFF_MAX = 300000;

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
 * @param {object} [o.pending]   from storage.createPendingStore: logouts to finish
 */
function createSession(o) {
  var store = o.store;
  var net = o.transport;
  var now = o.now;
  var margin = o.margin;
  /** The logouts the worker has not confirmed (storage.createPendingStore); in memory when not given. */
  var pend = o.pending || storage.createPendingStore(null, '');

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
    // A login is rare and deliberate: retry the pending logouts now, whatever the backoff says.
    retryPendingSoon(true);
    var keep = storeUnlessLoggedOut();
    var startEpoch = epoch;
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
        var body = bodyOf(res);
        if (startEpoch !== epoch) orphaned(body, sentAt, null);
        var r = keep(body, sentAt, null);
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
    var startEpoch = epoch;
    var sentAt = now();
    var attempt = net
      .withRetry(function () {
        return net.callWorker('POST', '/auth/refresh', { refresh_token: t.refresh_token });
      })
      .then(function (res) {
        if (isOk(res)) {
          var body = bodyOf(res);
          // logout() ran meanwhile and moved `t` to the pending logouts: give it the new tokens.
          if (startEpoch !== epoch) keepRotated(t, body, sentAt);
          return keep(body, sentAt, t);
        }
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
    retryPendingSoon(false);
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
   * Logouts the worker has not confirmed: each is retried (logout(), and in
   * the background on login / request / app start, with a backoff) until the
   * worker answers 204 or says the session is already over.
   */
  var chain = Promise.resolve();
  var flushes = 0; // flushes queued or running
  var failures = 0; // flushes in a row that left something pending
  var nextTry = 0; // ms of `now`: no background retry before this
  var lastError = null;

  /** The worker's own answer (X-WX-Edge-Error) with status 401. */
  function worker401(res) {
    if (res.statusCode !== 401 || !transport.headerOf(res, 'x-wx-edge-error')) return false;
    var b = bodyOf(res);
    return !!b && typeof b.error === 'string';
  }

  /** The worker's answer to POST /auth/logout: 'done', 'renew' (refresh, then again) or 'pending'. */
  function logoutOutcome(res) {
    if (isOk(res)) return 'done';
    var code = renewableCode(res);
    // The session was logged out or revoked: what the logout wanted.
    if (code === 'session_revoked') return 'done';
    if (code === 'token_expired' || code === 'invalid_token') return 'renew';
    lastError = net.errorFrom(res, '/auth/logout');
    return 'pending';
  }

  function sendLogout(access) {
    return net.withRetry(function () {
      return net.callWorker('POST', '/auth/logout', undefined, access);
    });
  }

  /**
   * Try to finish pending logout `p`: POST /auth/logout with its access
   * token, refreshing first when that has expired (the new refresh token is
   * written to the entry before the logout is sent, and added to `tried`).
   * Resolves true when it is finished and removed, false when it stays
   * pending.
   */
  function finishOne(p, tried) {
    var current = p;
    if (refreshExpired(p) && accessExpired(p)) {
      // Both tokens are past their lifetime: the session is over at the worker too.
      pend.remove(p);
      return Promise.resolve(true);
    }
    var first = accessExpired(p) ? Promise.resolve('renew') : sendLogout(p.access_token).then(logoutOutcome);
    return first
      .then(function (outcome) {
        if (outcome !== 'renew') return outcome === 'done';
        var sentAt = now();
        return net
          .withRetry(function () {
            return net.callWorker('POST', '/auth/refresh', { refresh_token: current.refresh_token });
          })
          .then(function (res) {
            if (!isOk(res)) {
              // Its refresh token is dead (rotated, reused, logged out, expired): so is the session.
              if (worker401(res)) return true;
              lastError = net.errorFrom(res, '/auth/refresh');
              return false;
            }
            var fresh = storage.pendingFrom(storage.recordFrom(bodyOf(res), sentAt, current), current.since);
            if (pend.replace(current, fresh)) {
              current = fresh;
              tried.push(fresh); // the same session: not to be tried again in this flush
            }
            return sendLogout(fresh.access_token).then(function (res2) {
              // A renewable 401 right after a refresh is not a confirmation: try again later.
              return logoutOutcome(res2) === 'done';
            });
          });
      })
      .then(
        function (done) {
          if (done) pend.remove(current);
          return done;
        },
        function (e) {
          lastError = e;
          return false;
        }
      );
  }

  /**
   * Try every pending logout once, one after the other; flushes never
   * overlap (a later one runs after the one in progress). Resolves with how
   * many stay pending.
   */
  function flushPending() {
    flushes++;
    var run = chain.then(function () {
      var tried = [];
      lastError = null;
      // Each entry once, including those added meanwhile (a login answered after logout()).
      function next() {
        var todo = pend.list().filter(function (p) {
          return tried.indexOf(p) === -1;
        });
        if (!todo.length) return Promise.resolve();
        tried.push(todo[0]);
        return finishOne(todo[0], tried).then(next);
      }
      return next().then(function () {
        var left = pend.list().length;
        if (left) {
          failures++;
          nextTry = now() + Math.min(BACKOFF_BASE * Math.pow(2, failures - 1), BACKOFF_MAX);
        } else {
          failures = 0;
          nextTry = 0;
        }
        return left;
      });
    });
    chain = always(run, function () {
      flushes--;
    }).catch(function () {});
    return run;
  }

  /** A background retry of the pending logouts, unless one is running or the backoff says wait. */
  function retryPendingSoon(force) {
    if (!pend.list().length || flushes > 0) return;
    if (!force && now() < nextTry) return;
    flushPending().catch(function () {});
  }

  /** A login or refresh answer that arrived after logout(): its session must be logged out too. */
  function orphaned(body, sentAt, previous) {
    try {
      pend.add(storage.pendingFrom(storage.recordFrom(body, sentAt, previous), now()));
    } catch (e) {
      return; // no usable tokens: nothing to log out with
    }
    retryPendingSoon(true);
  }

  /** A refresh of record `t` answered after logout() moved it to the pending logouts: keep the new tokens there. */
  function keepRotated(t, body, sentAt) {
    var entries = pend.list();
    for (var i = 0; i < entries.length; i++) {
      if (entries[i].refresh_token === t.refresh_token) {
        try {
          pend.replace(entries[i], storage.pendingFrom(storage.recordFrom(body, sentAt, t), entries[i].since));
        } catch (e) {
          // no usable tokens in the answer: keep the old ones
        }
        return;
      }
    }
  }

  function pendingError(left) {
    var cause = lastError;
    var why = cause && cause.message ? cause.message : 'no confirmation';
    var e = new AuthError(
      'logout_pending',
      'the worker did not confirm the logout (' +
        why +
        '); the tokens are gone from the app and kept only to finish it, which is retried',
      { statusCode: cause ? cause.statusCode : 0, retryAfter: cause ? cause.retryAfter : undefined }
    );
    e.pending = left;
    if (cause) e.cause = cause;
    return e;
  }

  /**
   * Wait for the login or refresh in flight, then end the local session
   * (no request uses its tokens any more) and move its tokens to the pending
   * logouts; then POST /auth/logout for each pending one (never logging in
   * for it). Resolves when the worker confirmed every one (204, or a 401
   * saying the session is already over); otherwise rejects with AuthError
   * logout_pending and keeps the rest for a retry.
   */
  function logout() {
    var inFlight = [loggingIn, refreshing].filter(Boolean).map(function (p) {
      return p.catch(function () {});
    });
    function endLocally() {
      var t = store.get();
      if (t) pend.add(storage.pendingFrom(t, now()));
      end();
    }
    // With nothing in flight the session ends before logout() returns: a
    // login() right after it starts a new session.
    var ended = inFlight.length ? Promise.all(inFlight).then(endLocally) : Promise.resolve(endLocally());
    return ended
      .then(function () {
        if (!pend.list().length) return 0;
        return flushPending();
      })
      .then(function (left) {
        if (left) throw pendingError(left);
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
    /** Retry the pending logouts in the background now (app start), unless a retry is running. */
    resumePendingLogouts: function () {
      retryPendingSoon(true);
    },
    /** Some logout still waits for the worker's confirmation (kept in storage, retried). */
    hasPendingLogout: function () {
      return pend.list().length > 0;
    },
    /** Tokens are stored and the refresh token has not expired (no request). */
    isLoggedIn: function () {
      var t = store.get();
      return !!t && !refreshExpired(t);
    },
  };
}

module.exports = { createSession: createSession, notLoggedIn: notLoggedIn, always: always };
