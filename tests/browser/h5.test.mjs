// A real browser: headless Chromium (Debian's package, /usr/bin/chromium or
// $CHROMIUM) driven by playwright-core loads an H5 page from a second local
// origin that is on CORS_ORIGINS. The page runs the client library through
// Taro's H5 runtime (the esbuild bundle of client/test/h5/, as a <script>):
// it logs in, calls a proxied API, survives an access-token expiry (by its
// clock: a refresh; and a token the worker refuses: the worker's 401, read
// through the exposed X-WX-Edge-Error, then a refresh and a retry) and logs
// out. A page from an origin not on the list is refused by the browser.
//
// Skipped, with the reason, when Chromium or build/index.js is missing.
// Run: node --test tests/browser/h5.test.mjs
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startStack, built } from '../support/stack.mjs';
import { serve } from '../support/serve.mjs';
import { bundleH5 } from '../../client/test/h5/bundle.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// The flags this closed network needs: without the background-networking
// ones Chromium keeps trying Google's hosts.
const FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

let skip = false;
if (!existsSync(CHROMIUM))
  skip = `browser test skipped: no Chromium at ${CHROMIUM} (scripts/bootstrap installs Debian's chromium)`;
else if (!built()) skip = 'browser test skipped: build/index.js is missing (scripts/build)';
if (skip) {
  console.error(skip);
  test('browser prerequisites: Chromium and build/index.js', { skip }, () => {});
}

/** A static H5 site: the page and its bundle. */
async function startSite(bundleJs) {
  const page = '<!doctype html><meta charset="utf-8"><title>wx-edge H5</title><script src="/h5.js"></script><p>H5</p>';
  const server = createServer((req, res) => {
    if (req.url === '/h5.js') {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' });
      res.end(bundleJs);
    } else if (req.url === '/favicon.ico') {
      res.writeHead(404);
      res.end();
    } else {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(page);
    }
  });
  return serve(server, { port: 0, host: '127.0.0.1' });
}

describe('H5 in headless Chromium', { skip }, () => {
  let dir, allowed, other, stack, browser;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'wx-edge-browser-'));
    const js = readFileSync(await bundleH5({ outfile: path.join(dir, 'h5.js'), format: 'iife' }), 'utf8');
    allowed = await startSite(js);
    other = await startSite(js);
    stack = await startStack({ vars: { CORS_ORIGINS: allowed.url, ACCESS_TOKEN_TTL: '60' } });
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
  });

  after(async () => {
    await browser?.close();
    await stack?.close();
    await allowed?.close();
    await other?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A new page (its own context: empty localStorage) at `site`, with its console kept. */
  async function open(site) {
    const context = await browser.newContext();
    const page = await context.newPage();
    const consoleLines = [];
    page.on('console', (m) => consoleLines.push(m.text()));
    page.on('pageerror', (e) => consoleLines.push(`page error: ${e.stack || e}`));
    await page.goto(`${site.url}/`);
    const loaded = await page.evaluate(() => typeof (window.WxEdgeH5 && window.WxEdgeH5.createAuth));
    assert.equal(loaded, 'function', `the H5 bundle did not load: ${consoleLines.join('\n')}`);
    return { page, consoleLines, close: () => context.close() };
  }

  test('an allowed origin: login, a proxied API, an expiry, a refused token, logout', async () => {
    const { page, close } = await open(allowed);
    try {
      const out = await page.evaluate(async (base) => {
        const { Taro, createAuth } = window.WxEdgeH5;
        let serial = 0;
        let logins = 0;
        const seen = [];
        Taro.addInterceptor((chain) => {
          seen.push(new URL(chain.requestParams.url).pathname);
          return chain.proceed(chain.requestParams);
        });
        // Taro.login is not supported in H5: the app supplies login.
        const api = {
          ...Taro,
          login(o) {
            logins += 1;
            setTimeout(() => o.success({ code: `browser.${++serial}`, errMsg: 'login:ok' }), 0);
          },
        };
        let offset = 0;
        const now = () => Date.now() + offset;
        const auth = createAuth({ baseUrl: base, api, now });
        const r = {};
        const t1 = await auth.login();
        r.stored = JSON.parse(localStorage.getItem('wx-edge.auth')).data.access_token === t1.access_token;
        const orders = await auth.request({ url: '/api/orders', data: { page: 2 } });
        r.orders = { status: orders.statusCode, openid: orders.data.headers['x-wx-openid'], query: orders.data.query };
        r.openid = t1.openid;
        r.headerNames = Object.keys(orders.header);
        // Expiry by the clock: one refresh, no login.
        offset += 61_000;
        const after = await auth.request({ url: '/api/after-expiry', method: 'POST', data: { a: 1 } });
        r.afterExpiry = { status: after.statusCode, body: after.data.body };
        const t2 = auth.tokens();
        r.rotated = t2.refresh_token !== t1.refresh_token;
        // A token the worker refuses (tampered): its 401 comes through
        // success; the client must read X-WX-Edge-Error across origins.
        const stored = JSON.parse(localStorage.getItem('wx-edge.auth')).data;
        const sig = stored.access_token;
        stored.access_token = sig.slice(0, -2) + (sig.at(-2) === 'A' ? 'B' : 'A') + sig.at(-1);
        Taro.setStorageSync('wx-edge.auth', stored);
        const restarted = createAuth({ baseUrl: base, api, now });
        const retried = await restarted.request({ url: '/api/after-401' });
        r.afterRefused = { status: retried.statusCode, tries: seen.filter((p) => p === '/api/after-401').length };
        const raw = await fetch(`${base}/api/x`, { headers: { authorization: `Bearer ${stored.access_token}` } });
        r.rawMarker = raw.headers.get('x-wx-edge-error');
        // Logout: 204, storage cleared, the token dead at the worker.
        const last = restarted.tokens();
        await restarted.logout();
        r.cleared = localStorage.getItem('wx-edge.auth') === null && !restarted.isLoggedIn();
        const dead = await fetch(`${base}/auth/session`, { headers: { authorization: `Bearer ${last.access_token}` } });
        r.dead = { status: dead.status, error: (await dead.json()).error, marker: dead.headers.get('x-wx-edge-error') };
        r.logins = logins;
        r.refreshes = seen.filter((p) => p === '/auth/refresh').length;
        return r;
      }, stack.url);
      assert.equal(out.stored, true);
      assert.deepEqual(out.orders, { status: 200, openid: out.openid, query: 'page=2' });
      // Chromium hands Taro the header names lower-cased.
      assert.ok(out.headerNames.includes('content-type'), out.headerNames.join());
      assert.ok(
        out.headerNames.every((h) => h === h.toLowerCase()),
        out.headerNames.join(),
      );
      assert.deepEqual(out.afterExpiry, { status: 200, body: '{"a":1}' });
      assert.equal(out.rotated, true);
      assert.deepEqual(out.afterRefused, { status: 200, tries: 2 });
      assert.equal(out.rawMarker, 'invalid_token');
      assert.deepEqual(out.dead, { status: 401, error: 'session_revoked', marker: 'session_revoked' });
      assert.equal(out.cleared, true);
      assert.equal(out.logins, 1);
      assert.equal(out.refreshes, 2);
    } finally {
      await close();
    }
  });

  test('an origin not on the list: the browser refuses, the client reports a network error', async () => {
    const { page, consoleLines, close } = await open(other);
    try {
      const out = await page.evaluate(async (base) => {
        const { Taro, createAuth } = window.WxEdgeH5;
        const api = { ...Taro, login: (o) => setTimeout(() => o.success({ code: 'stranger.1' }), 0) };
        const auth = createAuth({ baseUrl: base, api });
        const r = {};
        try {
          await auth.login();
          r.login = 'succeeded';
        } catch (e) {
          r.login = e.code;
        }
        // A simple request (no preflight) is sent, but its answer is not readable.
        try {
          await fetch(`${base}/.well-known/jwks.json`);
          r.jwks = 'read';
        } catch (e) {
          r.jwks = e.name;
        }
        r.stored = localStorage.getItem('wx-edge.auth');
        return r;
      }, stack.url);
      assert.deepEqual(out, { login: 'network_error', jwks: 'TypeError', stored: null });
      assert.ok(
        consoleLines.some((l) => /blocked by CORS policy/.test(l)),
        `Chromium said why: ${consoleLines.join('\n')}`,
      );
    } finally {
      await close();
    }
  });
});
