// Refresh tokens carry a tag keyed by REFRESH_SECRET over their user and
// session, checked before any session authority is asked (issue 16): a
// made-up or mangled token never wakes a Durable Object, never writes its
// storage and never takes a user's queue.
//
// What the authorities store is observed on disk: the stack's Durable
// Objects persist into a directory of this run, where each object that
// stored anything has its own SQLite file. Nothing here reads an authority
// through the worker (that would wake it); only the files are listed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { startStack, call, login } from '../support/stack.mjs';

let stack;
let dir;
before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'wx-edge-authorities-'));
  stack = await startStack({ miniflare: { durableObjectsPersist: dir } });
});
after(async () => {
  await stack?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Every file under `d` (relative path → size and modification time), the objects' storage. */
function files(d, prefix = '') {
  const out = new Map();
  for (const e of readdirSync(d, { withFileTypes: true })) {
    const rel = path.join(prefix, e.name);
    if (e.isDirectory()) for (const [k, v] of files(path.join(d, e.name), rel)) out.set(k, v);
    else {
      const st = statSync(path.join(d, e.name));
      out.set(rel, `${st.size} ${st.mtimeMs}`);
    }
  }
  return out;
}

/** The SQLite databases only (not their journals), by name. */
const databases = () => [...files(dir).keys()].filter((f) => f.endsWith('.sqlite')).sort();

const b64 = (s) => Buffer.from(s).toString('base64url');
const randomName = () => 'o' + randomBytes(14).toString('base64url');

async function refresh(token) {
  return call(stack, 'POST', '/auth/refresh', { body: { refresh_token: token } });
}

function assertInvalid(r, token) {
  assert.equal(r.status, 401, `${token}: ${r.status} ${r.text}`);
  assert.equal(r.json?.error, 'invalid_refresh_token', `${token}: ${r.text}`);
}

test('refresh tokens have four parts: user, session, secret, tag', async () => {
  const l = await login(stack, 'tagshape.1');
  const parts = l.refresh_token.split('.');
  assert.equal(parts.length, 4, l.refresh_token);
  assert.equal(Buffer.from(parts[0], 'base64url').toString(), l.openid);
  assert.equal(Buffer.from(parts[3], 'base64url').length, 16, 'a 128-bit tag');
  // Rotation keeps the user, the session and so the tag; the secret changes.
  const r = await refresh(l.refresh_token);
  assert.equal(r.status, 200, r.text);
  const next = r.json.refresh_token.split('.');
  assert.deepEqual([next[0], next[1], next[3]], [parts[0], parts[1], parts[3]]);
  assert.notEqual(next[2], parts[2]);
});

test('50 forged refresh tokens for random names → 401 invalid_refresh_token, and no Durable Object storage is created', async () => {
  // A real login stores its authority: the observation sees storage when
  // there is some.
  const l = await login(stack, 'tagctl.1');
  const stored = databases();
  assert.ok(stored.length >= 1, `a login's authority stored nothing visible in ${dir}: ${[...files(dir).keys()]}`);
  const [, sid, secret, tag] = l.refresh_token.split('.');

  const names = Array.from({ length: 50 }, randomName);
  for (const [i, name] of names.entries()) {
    const freshSid = randomBytes(16).toString('base64url');
    const freshSecret = randomBytes(32).toString('base64url');
    const forged = [
      // Made up whole: a random tag, or none (the three-part form).
      `${b64(name)}.${freshSid}.${freshSecret}.${randomBytes(16).toString('base64url')}`,
      `${b64(name)}.${freshSid}.${freshSecret}`,
      // A real token (its session, secret and tag) with the name swapped.
      `${b64(name)}.${sid}.${secret}.${tag}`,
    ][i % 3];
    assertInvalid(await refresh(forged), forged);
  }
  // The same names again, all at once: no queue, no object.
  const rs = await Promise.all(
    names.map((name) =>
      refresh(`${b64(name)}.${randomBytes(16).toString('base64url')}.${randomBytes(32).toString('base64url')}.${tag}`),
    ),
  );
  for (const r of rs) assertInvalid(r, 'concurrent forged token');

  await new Promise((r) => setTimeout(r, 200)); // any write would have landed
  assert.deepEqual(databases(), stored, 'a forged refresh token made an authority store something');
  // The real session is untouched.
  assert.equal((await refresh(l.refresh_token)).status, 200);
});

test("a forged token aimed at a real user's name changes nothing of theirs", async () => {
  const victim = await login(stack, 'tagvictim.1');
  const attacker = await login(stack, 'tagattacker.1');
  const before = await stack.user(victim.openid);
  await new Promise((r) => setTimeout(r, 50)); // a later write gets a later mtime
  const storage = files(dir);
  const [, sid, secret, tag] = attacker.refresh_token.split('.');
  const [vUser, vSid] = victim.refresh_token.split('.');
  for (const forged of [
    // The attacker's own valid token with the victim's name, with and
    // without its tag.
    `${vUser}.${sid}.${secret}.${tag}`,
    `${vUser}.${sid}.${secret}`,
    `${vUser}.${vSid}.${secret}`,
    // The victim's session with a secret and tag of the attacker's.
    `${vUser}.${vSid}.${secret}.${tag}`,
    // The victim's name and session, a made-up secret and tag.
    `${vUser}.${vSid}.${randomBytes(32).toString('base64url')}.${randomBytes(16).toString('base64url')}`,
  ]) {
    assertInvalid(await refresh(forged), forged);
  }
  await new Promise((r) => setTimeout(r, 200)); // any write would have landed
  assert.deepEqual(files(dir), storage, 'a forged refresh token made an authority write');
  assert.deepEqual(await stack.user(victim.openid), before);
  assert.equal((await refresh(victim.refresh_token)).status, 200);
  assert.equal((await refresh(attacker.refresh_token)).status, 200);
});

test('logs: REFRESH_SECRET never appears; a forged refresh names nobody', async () => {
  await new Promise((r) => setTimeout(r, 200)); // let workerd flush its stdio
  const logs = stack.logs();
  assert.ok(!logs.includes(stack.refreshSecret), 'REFRESH_SECRET is in the logs');
  const refreshes = logs
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l))
    .filter((l) => l.event === 'refresh' && l.code === 'invalid_refresh_token');
  assert.ok(refreshes.length >= 100, `${refreshes.length} refused refreshes logged`);
  for (const l of refreshes) assert.equal(l.user, undefined, JSON.stringify(l));
});
