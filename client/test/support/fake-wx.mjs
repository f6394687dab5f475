// A fake `wx` for tests: wx.login hands out codes, wx.request does real HTTP
// with the global fetch, storage lives in a Map.
//
//   const wx = createFakeWx({ user: 'alice' })        // codes alice.1, alice.2, ...
//   wx.calls          every wx.request as {method, url, path}, in order
//   wx.count('/auth/refresh')   how many requests went to that path
//   wx.logins         how many times wx.login was called
//   wx.storage        the Map behind get/set/removeStorageSync
//   wx.sessionValid   what wx.checkSession says (true; set false for an expired
//                     session_key; a wx.login makes it true again)
//   wx.checks         how many times wx.checkSession was called
//
// Options:
//   user          code prefix (default 'alice'); `codes` overrides it with a
//                 function () => code, or a thrown/returned {errMsg} for failure
//   loginFails    make wx.login call `fail` with this errMsg
//   failRequest   (opts) => errMsg | null: make wx.request call `fail` instead of fetching
//   style         'callback' (wx), 'taro' (callbacks AND a returned promise that
//                 rejects on failure), 'promise' (ignores callbacks, returns a promise)
//   noCheckSession  no wx.checkSession at all (an H5 build)

let codeSerial = 0;

/** A process-wide counter so codes are never reused across fakes (codes are single-use). */
export function nextSerial() {
  codeSerial += 1;
  return codeSerial;
}

export function createFakeWx(options = {}) {
  const { user = 'alice', codes, failRequest, style = 'callback' } = options;
  const storage = new Map();
  const calls = [];
  const fake = {
    storage,
    calls,
    logins: 0,
    loginFails: options.loginFails || null,
    /** Paths of requests that are in progress, for concurrency checks. */
    count(path) {
      return calls.filter((c) => c.path === path).length;
    },
    resetCounts() {
      calls.length = 0;
      fake.logins = 0;
    },
  };

  /** Run `work` (returns a promise of the success value) in the requested style. */
  function respond(opts, work) {
    const p = work();
    if (style === 'promise') return p;
    p.then(
      (v) => opts.success && opts.success(v),
      (e) => opts.fail && opts.fail(e),
    );
    // Like Taro: a separate promise that rejects too, unhandled unless the caller handles it.
    if (style === 'taro') return p.then((v) => v);
    return undefined;
  }

  fake.login = function login(opts = {}) {
    return respond(opts, async () => {
      fake.logins += 1;
      await Promise.resolve();
      if (fake.loginFails) throw { errMsg: fake.loginFails };
      fake.sessionValid = true;
      const code = codes ? codes() : `${user}.${nextSerial()}`;
      return { code, errMsg: 'login:ok' };
    });
  };

  fake.request = function request(opts = {}) {
    return respond(opts, async () => {
      const method = String(opts.method || 'GET').toUpperCase();
      let url = opts.url;
      const header = { ...(opts.header || {}) };
      const contentType = Object.entries(header).find(([k]) => k.toLowerCase() === 'content-type')?.[1];
      let body;
      const data = opts.data;
      if (method === 'GET' || method === 'HEAD') {
        // wx.request puts GET data into the query string.
        if (data !== undefined && data !== null && data !== '') {
          const qs = typeof data === 'string' ? data : new URLSearchParams(data).toString();
          if (qs) url += (url.includes('?') ? '&' : '?') + qs;
        }
      } else if (data !== undefined && data !== null) {
        if (typeof data === 'string' || data instanceof ArrayBuffer) {
          body = data;
        } else if (contentType && /x-www-form-urlencoded/i.test(contentType)) {
          body = new URLSearchParams(data).toString();
        } else {
          body = JSON.stringify(data);
          if (!contentType) header['content-type'] = 'application/json';
        }
      }
      const u = new URL(url);
      calls.push({ method, url, path: u.pathname });
      const failure = failRequest ? failRequest({ ...opts, url, method }) : null;
      if (failure) throw { errMsg: `request:fail ${failure}` };
      let res;
      try {
        res = await fetch(url, { method, headers: header, body, redirect: 'manual' });
      } catch (e) {
        throw { errMsg: `request:fail ${e.cause?.code || e.message}` };
      }
      const text = await res.text();
      let parsed = text;
      if (opts.dataType !== 'other') {
        try {
          parsed = JSON.parse(text);
        } catch {
          parsed = text;
        }
      }
      return {
        statusCode: res.status,
        data: parsed,
        header: Object.fromEntries(res.headers),
        errMsg: 'request:ok',
      };
    });
  };

  fake.sessionValid = true;
  fake.checks = 0;
  if (!options.noCheckSession) {
    fake.checkSession = function checkSession(opts = {}) {
      return respond(opts, async () => {
        fake.checks += 1;
        await Promise.resolve();
        if (!fake.sessionValid) throw { errMsg: 'checkSession:fail session time out, need relogin' };
        return { errMsg: 'checkSession:ok' };
      });
    };
  }

  fake.getStorageSync = (key) => (storage.has(key) ? structuredClone(storage.get(key)) : '');
  fake.setStorageSync = (key, value) => {
    storage.set(key, structuredClone(value));
  };
  fake.removeStorageSync = (key) => {
    storage.delete(key);
  };

  return fake;
}
