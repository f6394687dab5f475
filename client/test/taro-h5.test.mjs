// The client library under a runtime we did not write: Taro's H5 runtime
// (@tarojs/taro-h5, pinned in package.json) bundled with the client by
// esbuild as a Taro H5 build bundles it (test/h5/bundle.mjs), run under
// happy-dom (a DOM with a real `fetch` that enforces CORS, and a real
// `localStorage`), against the real worker in workerd with CORS_ORIGINS set
// to the page's origin.
//
// Every end-to-end test of e2e.test.mjs runs here again with `api` = Taro's
// H5 namespace, and only `login` supplied by the test: `Taro.login` is not
// supported in H5. The calls are counted, and a network failure is made,
// with a Taro request interceptor (`Taro.addInterceptor`), so `Taro.request`
// itself is Taro's own.
//
// Run: node --test client/test/taro-h5.test.mjs   (needs build/index.js)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { GlobalRegistrator } from '@happy-dom/global-registrator';

import { bundleH5 } from './h5/bundle.mjs';
import { usePlatform } from './support/platform.mjs';
import { nextSerial } from './support/fake-wx.mjs';

/** The H5 app's origin: the happy-dom page's URL, on CORS_ORIGINS. */
const PAGE = 'http://localhost:5173';
/** Where a request goes to fail for real (nothing listens on the discard port). */
const UNREACHABLE = 'http://127.0.0.1:9';

const BUILD = new URL('../../build/index.js', import.meta.url);

// happy-dom's window becomes the global scope (its fetch, localStorage,
// document, ...), but Node keeps its own timers: Miniflare and the test
// servers need Node's timer objects (`.unref()`), and Taro's timers work on
// either.
const nodeTimers = { setTimeout, clearTimeout, setInterval, clearInterval, setImmediate, clearImmediate };
GlobalRegistrator.register({ url: `${PAGE}/`, width: 375, height: 667 });
Object.assign(globalThis, nodeTimers);
const dir = mkdtempSync(path.join(tmpdir(), 'wx-edge-taro-h5-'));
const bundle = await bundleH5({ outfile: path.join(dir, 'taro-h5.mjs') });
const { Taro, createAuth, AuthError } = await import(pathToFileURL(bundle).href);

after(async () => {
  rmSync(dir, { recursive: true, force: true });
  await GlobalRegistrator.unregister();
});

/** The platform whose requests the interceptor is counting now (one at a time, as in e2e.test.mjs). */
let current = null;
Taro.addInterceptor((chain) => {
  const params = chain.requestParams;
  const method = String(params.method || 'GET').toUpperCase();
  if (current) {
    current.calls.push({ method, url: params.url, path: new URL(params.url).pathname });
    const failure = current.failRequest ? current.failRequest({ ...params, method }) : null;
    if (failure) params.url = UNREACHABLE + new URL(params.url).pathname;
  }
  return chain.proceed(params);
});

/**
 * A fresh H5 "device" for one user: localStorage emptied, `api` = Taro's H5
 * namespace with `login` supplied (codes `${user}.N`), plus the hooks the
 * e2e tests read (support/fake-wx.mjs has the same ones).
 */
function createTaroH5({ user = 'alice', failRequest } = {}) {
  localStorage.clear();
  const calls = [];
  const api = {
    ...Taro,
    login(opts = {}) {
      api.logins += 1;
      const code = `${user}.${nextSerial()}`;
      setTimeout(() => opts.success && opts.success({ code, errMsg: 'login:ok' }), 0);
    },
    calls,
    failRequest,
    logins: 0,
    count: (p) => calls.filter((c) => c.path === p).length,
    storage: {
      get: (k) => (localStorage.getItem(k) === null ? undefined : Taro.getStorageSync(k)),
      has: (k) => localStorage.getItem(k) !== null,
      set: (k, v) => Taro.setStorageSync(k, v),
    },
  };
  current = api;
  return api;
}

usePlatform({
  name: 'Taro H5 under happy-dom',
  create: createTaroH5,
  createAuth,
  AuthError,
  stackVars: { CORS_ORIGINS: PAGE },
});

// The whole end-to-end suite, on this runtime.
await import('./e2e.test.mjs');

// What this runtime does differently from wx, met by the client as it is.
const skip = existsSync(BUILD) ? false : 'build/index.js is missing (build the worker first: npm run build)';

test('Taro H5: without a supplied login, login() rejects wx_login_failed (Taro.login is not supported in H5)', async () => {
  localStorage.clear();
  const auth = createAuth({ baseUrl: 'http://127.0.0.1:9', api: Taro });
  await assert.rejects(auth.login(), (e) => {
    assert.ok(e instanceof AuthError);
    assert.equal(e.code, 'wx_login_failed');
    return true;
  });
});

test(
  "Taro H5 against the worker: 204 as data null, the worker's 401 through success, its marker readable",
  { skip },
  async () => {
    const { startStack } = await import('../../tests/support/stack.mjs');
    const stack = await startStack({ vars: { CORS_ORIGINS: PAGE } });
    try {
      const api = createTaroH5({ user: 'h5raw' });
      const auth = createAuth({ baseUrl: stack.url, api });
      const t = await auth.login();
      // Taro's own answers, as the client reads them.
      const unauth = await new Promise((resolve, reject) =>
        Taro.request({ url: `${stack.url}/api/x`, success: resolve, fail: reject }),
      );
      assert.equal(unauth.statusCode, 401);
      assert.equal(unauth.data.error, 'unauthorized');
      const marker = Object.entries(unauth.header).find(([k]) => k.toLowerCase() === 'x-wx-edge-error');
      assert.deepEqual(marker && marker[1], 'unauthorized');
      const out = await new Promise((resolve, reject) =>
        Taro.request({
          url: `${stack.url}/auth/logout`,
          method: 'POST',
          header: { Authorization: `Bearer ${t.access_token}` },
          success: resolve,
          fail: reject,
        }),
      );
      assert.equal(out.statusCode, 204);
      assert.equal(out.data, null);
      // The client after that logout: the session is over, its next request logs in again.
      const res = await auth.request({ url: '/api/after-logout' });
      assert.equal(res.statusCode, 200);
      assert.equal(api.logins, 2);
    } finally {
      await stack.close();
    }
  },
);
