// The soak (scripts/soak; not part of scripts/test): the built worker in
// workerd through Miniflare, as the integration tests run it, with a fraction
// of its KV calls failing, under mixed traffic from many simulated clients —
// login, refresh, proxied requests, logout, phone binding (double taps and
// binds racing refreshes included). Then the faults stop, the soak lets the
// worker settle, and checks:
//
//   - no session is usable after its logout: every session whose logout was
//     answered 204 (or 401) gets 401 for its access token on the proxy and
//     for its refresh token on /auth/refresh;
//   - no false logout: a session its client never logged out is never ended
//     under it (refresh_reused / session_revoked / invalid_refresh_token),
//     during the traffic or at a last refresh after settling;
//   - no 5xx other than 503 with Retry-After;
//   - and, while at it: every session still held is served by the proxy
//     after settling, and the origin never sees another user's identity.
//
// Everything listens on 127.0.0.1; every loop is bounded in count and time,
// and a watchdog ends the process if anything hangs. Exit status: 0 when all
// checks pass, 1 when one fails, 2 when the soak itself could not run.
//
//   node tests/soak/run.mjs --help
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { startEchoOrigin } from '../support/echo-origin.mjs';
import { faultOracle, rng, FAULT_KINDS } from './faults.mjs';
import { Client, Ledger, send, edgeError, DEAD_REFRESH, REQUEST_TIMEOUT_MS } from './client.mjs';

const HELP = `scripts/soak [options]   (node tests/soak/run.mjs [options] with build/ as it is)

Mixed traffic against the built worker with a fraction of KV calls failing,
then checks that no session is usable after logout, no session is ended
under its client, and no 5xx but 503 with Retry-After was answered.

  --duration S        seconds of traffic (default 180)
  --users N           simulated users (default 32); every fourth has a second
                      device, so users hold one or two sessions at a time
  --kv-fail-rate F    fraction of KV get/put/delete calls that fail while the
                      traffic runs (default 0.1; 0 = no faults)
  --kv-faults LIST    how they fail, chosen at random among: error (throws at
                      once), hang (answers nothing for --kv-hang-ms, then
                      throws), late (is made, then throws) (default all three)
  --kv-hang-ms MS     how long a hanging call hangs (default 1500)
  --settle S          after the faults stop, the longest wait for every
                      logged-out session to be refused (default 120)
  --session-check M   the worker's SESSION_CHECK (default every-request); in
                      refresh-only, where access tokens live until they
                      expire, only refresh tokens are checked after logout
  --seed X            seed of the clients' choices and of the faults
                      (default: random, printed)
  --json FILE         also write the results as JSON to FILE
  -h, --help          this text
`;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A wrong flag: said in one line, without a stack. */
class UsageError extends Error {}

function options() {
  let values;
  try {
    values = parseFlags();
  } catch (e) {
    throw new UsageError(e.message);
  }
  if (values.help) {
    process.stdout.write(HELP);
    process.exit(0);
  }
  const number = (name, lo, hi) => {
    const v = Number(values[name]);
    if (!Number.isFinite(v) || v < lo || v > hi) throw new UsageError(`--${name} must be a number in ${lo}..${hi}`);
    return v;
  };
  const kinds = values['kv-faults'].split(',').filter(Boolean);
  const unknown = kinds.filter((k) => !FAULT_KINDS.includes(k));
  if (unknown.length)
    throw new UsageError(`--kv-faults: unknown ${unknown.join(', ')} (known: ${FAULT_KINDS.join(', ')})`);
  const modes = ['every-request', 'authority', 'refresh-only'];
  if (!modes.includes(values['session-check']))
    throw new UsageError(`--session-check must be one of ${modes.join(', ')}`);
  return {
    duration: number('duration', 1, 24 * 3600),
    users: Math.floor(number('users', 1, 1000)),
    rate: number('kv-fail-rate', 0, 1),
    kinds,
    hangMs: Math.floor(number('kv-hang-ms', 0, 60_000)),
    settle: number('settle', 0, 3600),
    sessionCheck: values['session-check'],
    seed: values.seed ?? randomBytes(4).toString('hex'),
    json: values.json,
  };
}

function parseFlags() {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '180' },
      users: { type: 'string', default: '32' },
      'kv-fail-rate': { type: 'string', default: '0.1' },
      'kv-faults': { type: 'string', default: FAULT_KINDS.join(',') },
      'kv-hang-ms': { type: 'string', default: '1500' },
      settle: { type: 'string', default: '120' },
      'session-check': { type: 'string', default: 'every-request' },
      seed: { type: 'string' },
      json: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  return values;
}

function faultsText(o) {
  if (o.rate === 0 || o.kinds.length === 0) return 'no KV faults';
  const kinds = o.kinds.map((k) => (k === 'hang' ? `hang ${o.hangMs} ms` : k));
  return `KV fail rate ${o.rate} (${kinds.join(', ')})`;
}

/** Runs `fn` over `items`, `width` at a time. */
async function pool(items, width, fn) {
  const queue = [...items];
  await Promise.all(
    Array.from({ length: Math.min(width, queue.length) }, async () => {
      while (queue.length) await fn(queue.shift());
    }),
  );
}

async function main() {
  const o = options();
  const say = (line) => process.stderr.write(`[soak] ${line}\n`);
  // The access tokens must outlive the soak: a logged-out session's token
  // refused only because it expired would prove nothing.
  const accessTtl = Math.min(86_400, Math.max(600, Math.ceil(o.duration + o.settle + 600)));
  // A hard stop, whatever hangs.
  const watchdogMs = (o.duration + o.settle + 300) * 1000;
  const watchdog = setTimeout(() => {
    say(`watchdog: still running ${watchdogMs / 1000} s after the start; giving up`);
    process.exit(2);
  }, watchdogMs);
  watchdog.unref();

  let ledger;
  const oracle = faultOracle({
    seed: o.seed,
    rate: o.rate,
    kinds: o.kinds,
    hangMs: o.hangMs,
    onFault: (op, key, kind) => ledger?.kvFault(op, key, kind),
  });

  // Imported here, not at the top: flaky-stack.mjs must load stack.mjs itself.
  const { startFlakyStack, built } = await import('./flaky-stack.mjs');
  if (!built()) throw new Error('build/index.js is missing: run scripts/build (scripts/soak does)');
  const origin = await startEchoOrigin({ keepRequests: 10 });
  const stack = await startFlakyStack({
    decide: (c) => oracle.decide(c),
    origin,
    // WX_TIMEOUT_MS: the production default, not the tests' 1.5 s. The
    // simulator never fails the soak's users, but it shares this process and
    // the machine with everything else here; a WeChat timeout (502) under a
    // burst of logins would say nothing about storage faults.
    vars: { SESSION_CHECK: o.sessionCheck, ACCESS_TOKEN_TTL: String(accessTtl), WX_TIMEOUT_MS: '5000' },
  });
  const closeAll = async () => {
    await stack.close();
    await origin.close();
  };
  process.once('SIGINT', () => closeAll().finally(() => process.exit(130)));

  try {
    return await soak(o, stack, oracle, say, (l) => (ledger = l));
  } finally {
    await closeAll();
    clearTimeout(watchdog);
  }
}

async function soak(o, stack, oracle, say, setLedger) {
  const t0 = Date.now();
  const ledger = new Ledger(t0);
  setLedger(ledger);
  let phone = 0;
  const phoneCode = () => `phone-138${String(++phone).padStart(8, '0')}`;
  const clients = [];
  for (let u = 0; u < o.users; u++) {
    const user = `soak${o.seed}u${u}`;
    const devices = u % 4 === 3 ? 2 : 1;
    for (let d = 0; d < devices; d++) {
      const id = `u${u}d${d}`;
      clients.push(new Client({ base: stack.url, id, user, random: rng(o.seed, id), ledger, phoneCode }));
    }
  }
  say(
    `${o.duration} s of traffic: ${o.users} users, ${clients.length} clients; ${faultsText(o)}; ` +
      `SESSION_CHECK=${o.sessionCheck}; seed ${o.seed}`,
  );

  // ---- traffic, with faults -------------------------------------------------
  oracle.active = o.rate > 0;
  const deadline = t0 + o.duration * 1000;
  const progress = setInterval(() => {
    const n = [...ledger.answers.values()].reduce((a, b) => a + b, 0);
    const faults = Object.values(oracle.counts).reduce((a, c) => a + c.faults, 0);
    say(`t=${ledger.elapsed()}s requests=${n} kv-faults=${faults} sessions=${ledger.sessions.size}`);
  }, 15_000);
  // At most one action every 50 ms per client: a bound on the loop, not a pace.
  const maxActions = Math.ceil((o.duration * 1000) / 50);
  // The clients start over the first 2 s, not all at once.
  const ramp = 2000 / clients.length;
  await Promise.all(clients.map((c, i) => sleep(i * ramp).then(() => c.run(deadline, maxActions))));
  clearInterval(progress);
  oracle.active = false;
  const trafficS = (Date.now() - t0) / 1000;
  say(`traffic done after ${trafficS.toFixed(1)} s; faults off; settling (at most ${o.settle} s)`);

  // ---- settle: every logged-out session refused on the proxy, or the bound --
  const proxyWith = (access) => send(stack.url, 'GET', '/api/soak/check', { access });
  const refreshWith = (token) => send(stack.url, 'POST', '/auth/refresh', { body: { refresh_token: token } });
  const loggedOut = [...ledger.sessions.values()].filter((s) => s.state === 'logged-out');
  // In refresh-only, access tokens are trusted until they expire, by design:
  // only refresh tokens are checked.
  const proxyRefuses = o.sessionCheck !== 'refresh-only';
  const pending = new Set(proxyRefuses ? loggedOut : []);
  const settleStart = Date.now();
  const settleEnd = settleStart + o.settle * 1000;
  let rounds = 0;
  while (pending.size > 0) {
    rounds++;
    await pool([...pending], 16, async (s) => {
      const r = await proxyWith(s.access.at(-1));
      ledger.saw('check-proxy', r);
      if (r.status === 401) {
        pending.delete(s);
        s.refusedAfterSettleMs = Date.now() - settleStart;
      }
    });
    if (pending.size === 0 || Date.now() >= settleEnd) break;
    await sleep(Math.min(1000, settleEnd - Date.now()));
  }
  const settleS = (Date.now() - settleStart) / 1000;
  say(
    `settled after ${settleS.toFixed(1)} s (${rounds} rounds): ${loggedOut.length - pending.size}/${loggedOut.length} ` +
      'logged-out sessions refused on the proxy',
  );

  // ---- checks ---------------------------------------------------------------
  // Logged out: every access token kept (the newest few) is refused on the
  // proxy, and every refresh token kept on /auth/refresh.
  const usableAfterLogout = [];
  // Answers that neither refuse nor serve (an expired token, a 503 with the
  // faults off): the token was not checked.
  const unclear = [];
  await pool(loggedOut, 8, async (s) => {
    const usable = [];
    for (const a of proxyRefuses ? s.access : []) {
      const r = await proxyWith(a);
      ledger.saw('check-proxy', r);
      if (r.status === 200) usable.push('access token: the proxy served it');
      else if (r.status !== 401 || edgeError(r) === 'token_expired')
        unclear.push(`${s.sid} proxy ${r.status} ${edgeError(r) ?? ''}`);
    }
    for (const t of s.refresh) {
      const r = await refreshWith(t);
      ledger.saw('check-refresh', r);
      if (r.status === 200) usable.push('refresh token: /auth/refresh answered 200');
      else if (r.status !== 401) unclear.push(`${s.sid} refresh ${r.status} ${edgeError(r) ?? ''}`);
    }
    if (usable.length) usableAfterLogout.push({ sid: s.sid, client: s.client, usable, events: [...s.events] });
  });

  // Still held: a last refresh must work, and its access token be served.
  const liveRefused = [];
  const held = clients.filter((c) => c.tokens && c.session?.state === 'live');
  await pool(held, 8, async (c) => {
    const s = c.session;
    const r = await refreshWith(c.tokens.refresh);
    ledger.saw('check-refresh', r);
    ledger.event(s, `final refresh ${r.status} ${edgeError(r) ?? ''}`.trim());
    if (r.status === 401 && DEAD_REFRESH.includes(edgeError(r))) {
      c.ended(s, `final refresh answered 401 ${edgeError(r)}`);
      return;
    }
    if (r.status !== 200) {
      liveRefused.push({ sid: s.sid, client: c.id, why: `final refresh ${r.status}`, events: [...s.events] });
      return;
    }
    c.take(r.json, 'final refresh');
    const p = await proxyWith(c.tokens.access);
    ledger.saw('check-proxy', p);
    if (p.status !== 200) {
      liveRefused.push({
        sid: s.sid,
        client: c.id,
        why: `proxy ${p.status} ${edgeError(p) ?? ''}`,
        events: [...s.events],
      });
    } else {
      c.checkIdentity(p);
    }
  });

  // What KV itself still holds for them (the replica a logout deletes).
  let replicasLeft = 0;
  for (const s of loggedOut) if ((await stack.sessionsKv.get(`session:${s.sid}`)) !== null) replicasLeft++;

  // Sessions whose logout was never confirmed (503 twice, no answer): not a
  // violation (the client was told to try again), but worth knowing.
  const unconfirmed = [...ledger.sessions.values()].filter((s) => s.state === 'logout-unconfirmed');
  let unconfirmedUsable = 0;
  await pool(proxyRefuses ? unconfirmed : [], 8, async (s) => {
    const r = await proxyWith(s.access.at(-1));
    ledger.saw('check-proxy', r);
    if (r.status === 200) unconfirmedUsable++;
  });

  // ---- report -----------------------------------------------------------------
  const states = {};
  for (const s of ledger.sessions.values()) states[s.state] = (states[s.state] ?? 0) + 1;
  const checks = [
    ['sessions usable after logout', usableAfterLogout],
    ['false logouts', ledger.falseLogouts],
    ['5xx other than 503 with Retry-After', ledger.bad5xx],
    ['held sessions refused after settling', liveRefused],
    ['wrong identity at the origin', ledger.wrongIdentity],
  ];
  const failed = checks.filter(([, v]) => v.length > 0);
  const lines = [];
  const out = (l = '') => lines.push(l);
  out(
    `soak: ${trafficS.toFixed(0)} s of traffic, ${o.users} users / ${clients.length} clients, ` +
      `${faultsText(o)}, SESSION_CHECK=${o.sessionCheck}, seed ${o.seed}`,
  );
  out();
  out('answers (endpoint status: count; status 0 = no answer within ' + REQUEST_TIMEOUT_MS / 1000 + ' s):');
  const byEndpoint = {};
  for (const [k, n] of [...ledger.answers].sort()) {
    const [endpoint, status] = k.split(' ');
    (byEndpoint[endpoint] ??= []).push(`${status}: ${n}`);
  }
  for (const [endpoint, list] of Object.entries(byEndpoint)) out(`  ${endpoint.padEnd(14)} ${list.join('  ')}`);
  out();
  out('KV calls (made while the traffic ran and after; faults only while it ran):');
  for (const [op, c] of Object.entries(oracle.counts)) {
    const kinds = o.kinds.map((k) => `${k} ${c[k]}`).join(', ');
    out(`  ${op.padEnd(7)} ${c.calls} calls, ${c.faults} failed (${kinds})`);
  }
  out();
  out(`sessions seen by the clients: ${ledger.sessions.size}`);
  for (const [state, n] of Object.entries(states).sort()) out(`  ${state.padEnd(26)} ${n}`);
  out(
    (proxyRefuses
      ? `  logged out: ${loggedOut.length - pending.size}/${loggedOut.length} refused on the proxy within the settle ` +
        `(${settleS.toFixed(1)} s)`
      : `  logged out: ${loggedOut.length} (refresh-only: their access tokens are not checked on the proxy)`) +
      (unclear.length ? `; ${unclear.length} tokens could not be checked (e.g. ${unclear[0]})` : ''),
  );
  out(`  logged out, their session:{id} replica still in KV: ${replicasLeft}`);
  if (unconfirmed.length)
    out(`  logouts never confirmed: ${unconfirmed.length}, of which still usable: ${unconfirmedUsable}`);
  if (ledger.expectedReuse.length) {
    out(`  ended by reuse after a refresh answer was lost (the contract's reuse rule): ${ledger.expectedReuse.length}`);
  }
  if (ledger.notes.size) {
    out();
    out('notes:');
    for (const [what, n] of [...ledger.notes].sort()) out(`  ${String(n).padStart(6)}  ${what}`);
  }
  out();
  out('checks:');
  for (const [name, v] of checks) out(`  ${v.length ? 'FAIL' : 'ok  '} ${name}: ${v.length} (must be 0)`);
  for (const [name, v] of failed) {
    out();
    out(`${name}: the first ${Math.min(3, v.length)} of ${v.length}`);
    for (const x of v.slice(0, 3)) {
      const { events, ...rest } = x;
      out(`  ${JSON.stringify(rest)}`);
      for (const e of (events ?? []).slice(-15)) out(`      ${e}`);
    }
  }
  process.stdout.write(lines.join('\n') + '\n');

  if (o.json) {
    const results = {
      options: o,
      traffic_s: trafficS,
      settle_s: settleS,
      answers: Object.fromEntries(ledger.answers),
      kv: oracle.counts,
      sessions: states,
      replicas_left_after_logout: replicasLeft,
      notes: Object.fromEntries(ledger.notes),
      checks: Object.fromEntries(checks.map(([name, v]) => [name, v])),
    };
    writeFileSync(o.json, JSON.stringify(results, null, 2) + '\n');
  }
  return failed.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    if (e instanceof UsageError) process.stderr.write(`[soak] ${e.message} (scripts/soak --help)\n`);
    else process.stderr.write(`[soak] could not run: ${e?.stack ?? e}\n`);
    process.exit(2);
  },
);
