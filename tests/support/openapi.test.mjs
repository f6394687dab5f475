// openapi.yaml against the worker's sources, and the checker that holds the
// integration tests' answers to it (tests/support/openapi.mjs): it must
// refuse what the description does not allow, or it proves nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { compileAll, contractProblems, spec } from './openapi.mjs';

const src = (p) => readFileSync(new URL(`../../${p}`, import.meta.url), 'utf8');
const codes = new Set(spec.components.schemas.ErrorCode.enum);

const json = (status, body, headers = {}) => ({
  status,
  headers: new Headers({ 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...headers }),
  text: JSON.stringify(body),
});
const error = (status, code, headers = {}) =>
  json(status, { error: code, message: 'm' }, { 'x-wx-edge-error': code, ...headers });
const challenge = { 'www-authenticate': 'Bearer realm="wx-edge", error="invalid_token"' };
const TOKENS = {
  access_token: 'a',
  token_type: 'Bearer',
  expires_in: 600,
  refresh_token: 'r',
  refresh_expires_in: 2592000,
  openid: 'o',
  phone_bound: false,
};

test("the description's error codes are exactly the worker's", () => {
  const inSource = [...src('src/error.rs').matchAll(/=> "([a-z_]+)",?$/gm)].map((m) => m[1]);
  assert.ok(inSource.length >= 20, `read ${inSource.length} codes from src/error.rs`);
  for (const c of inSource) assert.ok(codes.has(c), `${c} (src/error.rs) is not in ErrorCode`);
  for (const c of codes) assert.ok(inSource.includes(c), `${c} (ErrorCode) is no error of the worker's (src/error.rs)`);
});

test('every path the router knows is described', () => {
  const literals = [
    ...src('src/http/router.rs')
      .split('#[cfg(test)]')[0]
      .matchAll(/"(\/auth\/[a-z/-]*[a-z])"/g),
  ].map((m) => m[1]);
  assert.ok(literals.includes('/auth/login'));
  for (const p of literals) assert.ok(p in spec.paths, `${p} (src/http/router.rs) is not in openapi.yaml`);
  assert.ok('/.well-known/jwks.json' in spec.paths);
});

test('every schema of the description compiles, and every error answer carries the marker and no-store', () => {
  assert.ok(compileAll() > 40);
  let errors = 0;
  for (const [name, r] of Object.entries(spec.components.responses)) {
    if (!r.content?.['application/json']) continue;
    errors++;
    assert.ok(r.headers?.['X-WX-Edge-Error'], `${name} carries X-WX-Edge-Error`);
    assert.ok(r.headers?.['Cache-Control'], `${name} carries Cache-Control`);
  }
  assert.ok(errors > 15);
});

test('answers that match pass', () => {
  assert.deepEqual(contractProblems('POST', '/auth/login', json(200, { ...TOKENS, unionid: 'u' })), []);
  assert.deepEqual(contractProblems('POST', '/auth/refresh?x=1', error(401, 'refresh_reused', challenge)), []);
  assert.deepEqual(contractProblems('GET', '/auth/login', error(405, 'method_not_allowed', { allow: 'POST' })), []);
  assert.deepEqual(contractProblems('GET', '/auth/nope', error(404, 'not_found')), []);
  assert.deepEqual(contractProblems('POST', '/auth/admin/users/o1', error(404, 'not_found')), []);
  assert.deepEqual(
    contractProblems('POST', '/auth/logout', {
      status: 204,
      headers: new Headers({ 'cache-control': 'no-store' }),
      text: '',
    }),
    [],
  );
  assert.deepEqual(contractProblems('HEAD', '/auth/session', { ...json(200, {}), text: '' }), []);
  assert.deepEqual(contractProblems('POST', '/auth/login', error(429, 'rate_limited', { 'retry-after': '60' })), []);
  // The origin's answers are the origin's, whatever they are.
  assert.deepEqual(contractProblems('GET', '/api/x', { status: 418, headers: new Headers(), text: 'teapot' }), []);
  assert.deepEqual(contractProblems('GET', '/api/x', error(401, 'token_expired', challenge)), []);
  // WeChat's answers through the relay: only no-store is the worker's.
  const wechat = {
    status: 200,
    headers: new Headers({ 'content-type': 'image/png', 'cache-control': 'no-store' }),
    text: 'PNG',
  };
  assert.deepEqual(contractProblems('POST', '/auth/service/wechat/wxa/getwxacode', wechat), []);
  assert.deepEqual(contractProblems('POST', '/auth/service/wechat/cgi-bin/token', error(403, 'relay_refused')), []);
  assert.deepEqual(contractProblems('OPTIONS', '/auth/login', { status: 204, headers: new Headers(), text: '' }), []);
});

test('answers that do not match are refused, each for its reason', () => {
  const refused = (method, url, res, pattern) => {
    const problems = contractProblems(method, url, res);
    assert.ok(
      problems.some((p) => pattern.test(p)),
      `${method} ${url}: ${JSON.stringify(problems)}`,
    );
  };
  const { openid: _, ...noOpenid } = TOKENS;
  refused('POST', '/auth/login', json(200, noOpenid), /required property 'openid'/);
  refused('POST', '/auth/login', json(200, { ...TOKENS, session_key: 'leak' }), /additional properties/);
  refused('POST', '/auth/login', json(200, TOKENS, { 'cache-control': 'max-age=60' }), /Cache-Control/);
  refused('POST', '/auth/login', error(401, 'invalid_token', challenge), /status 401 is not in the description/);
  refused('POST', '/auth/login', error(400, 'token_expired'), /must be equal to one of the allowed values/);
  refused('GET', '/auth/session', error(401, 'token_expired'), /WWW-Authenticate is missing/);
  refused('POST', '/auth/login', error(429, 'rate_limited'), /Retry-After is missing/);
  refused(
    'POST',
    '/auth/login',
    json(400, { error: 'invalid_code', message: 'm' }, { 'x-wx-edge-error': 'invalid_request' }),
    /X-WX-Edge-Error invalid_request but the body says invalid_code/,
  );
  refused(
    'POST',
    '/auth/logout',
    { status: 204, headers: new Headers({ 'cache-control': 'no-store' }), text: 'x' },
    /a body where/,
  );
  refused('POST', '/auth/admin/users/o1', error(405, 'method_not_allowed', { allow: 'GET' }), /404 expected/);
  refused('PUT', '/auth/login', error(404, 'not_found'), /405 expected/);
  refused('GET', '/auth/nope', error(405, 'method_not_allowed'), /404 expected/);
  refused('GET', '/api/x', error(409, 'openid_mismatch'), /not a status the proxy answers itself/);
  refused(
    'GET',
    '/.well-known/jwks.json',
    json(200, { keys: [{ kty: 'RSA' }] }, { 'cache-control': 'public, max-age=300' }),
    /keys/,
  );
  refused(
    'POST',
    '/auth/login',
    { status: 200, headers: new Headers({ 'cache-control': 'no-store' }), text: 'ok' },
    /not JSON/,
  );
});
