// The self-host profile's KV service (selfhost/kv.js) on its own, in workerd
// (Miniflare), spoken to as workerd's KV binding speaks to it: one HTTP
// request per operation (see the file's header). The smoke test runs it
// behind the real binding.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Miniflare } from 'miniflare';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
let mf;

before(async () => {
  mf = new Miniflare({
    modules: true,
    scriptPath: path.join(root, 'selfhost', 'kv.js'),
    compatibilityDate: '2026-08-01',
    durableObjects: { STORE: { className: 'KvStore', useSQLite: true } },
  });
  await mf.ready;
});
after(() => mf.dispose());

const at = (key, query = '') => `https://fake-host/${encodeURIComponent(key)}?urlencoded=true${query}`;
const kv = (url, init) => mf.dispatchFetch(url, init);

test('put, get and delete keep bytes and metadata, keys of any characters', async () => {
  for (const key of ['session:abc', 'allow:phone:+8613800138000', 'a/b/../c', 'with space', '中文', '%41']) {
    assert.equal((await kv(at(key))).status, 404, key);
    const put = await kv(at(key), { method: 'PUT', body: `value of ${key}`, headers: { 'CF-KV-Metadata': '{"n":1}' } });
    assert.equal(put.status, 200, key);
    const got = await kv(at(key));
    assert.equal(got.status, 200, key);
    assert.equal(await got.text(), `value of ${key}`);
    assert.equal(got.headers.get('CF-KV-Metadata'), '{"n":1}');
    assert.equal((await kv(at(key), { method: 'DELETE' })).status, 200);
    assert.equal((await kv(at(key))).status, 404, key);
  }
  // Other keys are untouched by a look-alike ('%41' is not 'A').
  await kv(at('A'), { method: 'PUT', body: 'a' });
  assert.equal((await kv(at('%41'))).status, 404);
  assert.equal((await kv(at('A', ''), { method: 'DELETE' })).status, 200);
  assert.equal((await kv(at('missing'), { method: 'DELETE' })).status, 200, 'deleting nothing is fine');
});

test('an overwrite replaces value, metadata and expiry', async () => {
  await kv(at('over', '&expiration_ttl=1'), { method: 'PUT', body: 'one', headers: { 'CF-KV-Metadata': '{"v":1}' } });
  await kv(at('over'), { method: 'PUT', body: 'two' });
  const got = await kv(at('over'));
  assert.equal(await got.text(), 'two');
  assert.equal(got.headers.get('CF-KV-Metadata'), null);
  assert.equal(got.headers.get('Expiration'), null);
});

test('expired keys are gone from get and list', async () => {
  const now = Math.floor(Date.now() / 1000);
  await kv(at('exp:ttl', '&expiration_ttl=1'), { method: 'PUT', body: 'x' });
  await kv(at('exp:abs', `&expiration=${now + 1}`), { method: 'PUT', body: 'y' });
  await kv(at('exp:keep', `&expiration=${now + 3600}`), { method: 'PUT', body: 'z' });
  assert.equal((await kv(at('exp:ttl'))).status, 200);
  await new Promise((r) => setTimeout(r, 2100));
  assert.equal((await kv(at('exp:ttl'))).status, 404);
  assert.equal((await kv(at('exp:abs'))).status, 404);
  const list = await (await kv('https://fake-host/?prefix=exp%3A')).json();
  assert.deepEqual(list, { keys: [{ name: 'exp:keep', expiration: now + 3600 }], list_complete: true });
});

test('a bad expiration or method is refused, nothing stored', async () => {
  for (const q of ['&expiration_ttl=soon', '&expiration=-5', '&expiration_ttl=1.5']) {
    assert.equal((await kv(at('bad', q), { method: 'PUT', body: 'v' })).status, 400, q);
  }
  assert.equal((await kv(at('bad'))).status, 404);
  assert.equal((await kv(at('bad'), { method: 'POST', body: 'v' })).status, 405);
});

test('list pages by prefix in key order with a cursor', async () => {
  const names = Array.from({ length: 7 }, (_, i) => `page:${i}`);
  for (const n of names) await kv(at(n), { method: 'PUT', body: n, headers: { 'CF-KV-Metadata': `{"i":"${n}"}` } });
  await kv(at('pagf'), { method: 'PUT', body: 'not in the prefix' });
  const seen = [];
  let cursor;
  let pages = 0;
  do {
    const q = new URLSearchParams({ prefix: 'page:', key_count_limit: '3' });
    if (cursor) q.set('cursor', cursor);
    const page = await (await kv(`https://fake-host/?${q}`)).json();
    pages++;
    for (const k of page.keys) {
      assert.deepEqual(k.metadata, { i: k.name });
      seen.push(k.name);
    }
    cursor = page.list_complete ? undefined : page.cursor;
  } while (cursor);
  assert.deepEqual(seen, names);
  assert.equal(pages, 3);
  assert.equal((await kv('https://fake-host/?cursor=%%%')).status, 400);
});
