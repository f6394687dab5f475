/*
 * wx-edge client, storage: the token record, when its tokens expire, and the
 * one storage key that keeps it across restarts.
 *
 * Also the list of logouts the worker has not confirmed yet, under a second
 * key. Knows nothing of requests: the session part decides when to store.
 */
'use strict';

var AuthError = require('./error.js').AuthError;

/**
 * The record stored under `key` through the platform API's synchronous
 * storage calls. Loaded once, here; every change is written through. A
 * storage that is missing, full or failing never fails the caller: the record
 * then lives in memory for this run.
 *
 * `get()` returns the same object until the next `set` or `clear`, so callers
 * may compare records by identity ("was it replaced meanwhile?").
 */
function createStore(api, key) {
  var current = load(api, key);
  return {
    get: function () {
      return current;
    },
    set: function (record) {
      current = record;
      try {
        if (typeof api.setStorageSync === 'function') api.setStorageSync(key, record);
      } catch (e) {
        // Storage full or unavailable: keep the session in memory for this run.
      }
    },
    clear: function () {
      current = null;
      try {
        if (typeof api.removeStorageSync === 'function') api.removeStorageSync(key);
      } catch (e) {
        // nothing more to do
      }
    },
  };
}

/** At most this many sessions wait for their logout; beyond it the oldest is given up. */
var MAX_PENDING_LOGOUTS = 8;

/**
 * The logouts the worker has not confirmed yet, stored under `key` (a list
 * of `{access_token, refresh_token, expires_in, expires_at,
 * refresh_expires_at, since}`), loaded once and written through like the
 * token record. `api` may be null: the list then lives in memory.
 *
 * `list()` returns a copy; entries are compared by identity, and `replace`
 * swaps one for its refreshed version.
 */
function createPendingStore(api, key) {
  var entries = loadPending(api, key);
  function save() {
    try {
      if (!api) return;
      if (!entries.length) {
        if (typeof api.removeStorageSync === 'function') api.removeStorageSync(key);
      } else if (typeof api.setStorageSync === 'function') {
        api.setStorageSync(key, entries);
      }
    } catch (e) {
      // Storage full or unavailable: keep the list in memory for this run.
    }
  }
  return {
    list: function () {
      return entries.slice();
    },
    add: function (entry) {
      entries = entries.concat([entry]);
      if (entries.length > MAX_PENDING_LOGOUTS) entries = entries.slice(entries.length - MAX_PENDING_LOGOUTS);
      save();
    },
    replace: function (old, entry) {
      var i = entries.indexOf(old);
      if (i === -1) return false;
      entries = entries.slice();
      entries[i] = entry;
      save();
      return true;
    },
    remove: function (entry) {
      var i = entries.indexOf(entry);
      if (i === -1) return;
      entries = entries.slice(0, i).concat(entries.slice(i + 1));
      save();
    },
  };
}

/** The stored list of pending logouts (an array, or the JSON string of one); unusable entries are dropped. */
function loadPending(api, key) {
  var raw;
  try {
    raw = api && typeof api.getStorageSync === 'function' ? api.getStorageSync(key) : null;
  } catch (e) {
    return [];
  }
  if (typeof raw === 'string' && raw) {
    try {
      raw = JSON.parse(raw);
    } catch (e) {
      return [];
    }
  }
  if (!Array.isArray(raw)) return [];
  return raw.filter(function (p) {
    return p && typeof p === 'object' && typeof p.access_token === 'string' && typeof p.refresh_token === 'string';
  });
}

/** What a pending logout keeps of token record `t`: enough to log its session out later, refreshing first if need be. */
function pendingFrom(t, since) {
  return {
    access_token: t.access_token,
    refresh_token: t.refresh_token,
    expires_in: t.expires_in || 0,
    expires_at: t.expires_at || 0,
    refresh_expires_at: t.refresh_expires_at || 0,
    since: since,
  };
}

/** The stored record (an object, or the JSON string of one), or null when there is none or it is unusable. */
function load(api, key) {
  var raw;
  try {
    raw = typeof api.getStorageSync === 'function' ? api.getStorageSync(key) : null;
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

/**
 * Turn a token response (login, refresh, phone) into the record to store.
 * `sentAt` (ms) is when the request left, so lifetimes never run long;
 * `previous` (or null) fills what the response leaves out (a phone
 * binding's answer has no refresh token nor its lifetime: binding does not
 * rotate it; a refresh may leave out openid and unionid).
 */
function recordFrom(body, sentAt, previous) {
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

/**
 * The access token of record `t` is (about to be) expired by the clock `now`
 * (a function giving ms): refresh before using it. `margin` is in seconds.
 */
function accessExpired(t, now, margin) {
  if (!t.expires_in || !t.expires_at) return false; // unknown lifetime: rely on the 401
  // Never let the margin eat more than half of a short-lived token.
  var m = Math.min(margin, (t.expires_in || 0) / 2);
  return now() >= t.expires_at - m * 1000;
}

/** The refresh token of record `t` is expired by the clock `now`: only a new login helps. */
function refreshExpired(t, now) {
  return !!t.refresh_expires_at && now() >= t.refresh_expires_at;
}

/** A frozen copy of a record for callers (who must not change the stored one), or null. */
function frozenCopy(r) {
  return r ? Object.freeze(Object.assign({}, r)) : null;
}

module.exports = {
  createStore: createStore,
  createPendingStore: createPendingStore,
  pendingFrom: pendingFrom,
  MAX_PENDING_LOGOUTS: MAX_PENDING_LOGOUTS,
  recordFrom: recordFrom,
  accessExpired: accessExpired,
  refreshExpired: refreshExpired,
  frozenCopy: frozenCopy,
};
