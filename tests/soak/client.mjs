// client.mjs — the soak's simulated mini-program clients and what they saw.
//
// Each client keeps its own tokens the way client/ (the client library)
// does: it stores every token pair it is answered with (a phone binding's
// answer without a refresh_token keeps the one it holds), waits out the
// worker's own 429 / 503 (Retry-After, at most 10 s) once, refreshes and
// retries once on the worker's renewable 401, logs in again when its refresh
// token is dead, and forgets its tokens on logout whatever the answer.

/** Longest wait for one answer; a request past it counts as unanswered. */
export const REQUEST_TIMEOUT_MS = 20_000;
/** The client library's cap on a Retry-After wait, in seconds. */
const MAX_RETRY_WAIT = 10;
/** Events kept per session, to explain a violation. */
const EVENTS_KEPT = 40;

/** Refresh answers that end a session for good (the client must log in again). */
export const DEAD_REFRESH = ['refresh_reused', 'session_revoked', 'invalid_refresh_token'];
/** 401s the client library answers by refreshing (transport.js RENEWABLE). */
const RENEWABLE = ['token_expired', 'invalid_token', 'session_revoked'];

/**
 * What a client may do next, with weights (out of 100). `idle` is the app in
 * the background for 5–15 s: long enough for the 10 s refresh grace to pass,
 * so that a token that was rotated away behind the client's back shows up.
 */
const ACTIONS = [
  ['proxy', 45],
  ['refresh', 12],
  ['bind', 7],
  ['double-tap', 4],
  ['bind+refresh', 4],
  ['logout', 3],
  ['refresh+logout', 3],
  ['idle', 22],
];

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Everything the clients saw, for the report. */
export class Ledger {
  constructor(t0) {
    this.t0 = t0;
    /** `${endpoint} ${status}` → count; status 0 is "no answer". */
    this.answers = new Map();
    /** sid → session record. */
    this.sessions = new Map();
    this.bad5xx = [];
    this.falseLogouts = [];
    this.expectedReuse = [];
    this.wrongIdentity = [];
    this.notes = new Map();
  }

  elapsed() {
    return ((Date.now() - this.t0) / 1000).toFixed(1);
  }

  note(what) {
    this.notes.set(what, (this.notes.get(what) ?? 0) + 1);
  }

  /** One answer: counted, and a 5xx other than 503 with Retry-After kept as a violation. */
  saw(endpoint, r) {
    const key = `${endpoint} ${r.status}`;
    this.answers.set(key, (this.answers.get(key) ?? 0) + 1);
    if (r.status >= 500 && !(r.status === 503 && r.headers['retry-after'])) {
      this.bad5xx.push({
        at: this.elapsed(),
        endpoint,
        status: r.status,
        retryAfter: r.headers['retry-after'] ?? null,
        body: r.text.slice(0, 200),
      });
    }
  }

  session(sid, user, client) {
    let s = this.sessions.get(sid);
    if (!s) {
      s = { sid, user, client, state: 'live', access: [], refresh: [], events: [], lostAnswer: false };
      this.sessions.set(sid, s);
    }
    return s;
  }

  event(s, text) {
    if (!s) return;
    s.events.push(`${this.elapsed()}s ${text}`);
    if (s.events.length > EVENTS_KEPT) s.events.shift();
  }

  /** A KV fault on a session's replica key, told to that session's history. */
  kvFault(op, key, kind) {
    if (key.startsWith('session:'))
      this.event(this.sessions.get(key.slice('session:'.length)), `kv ${op} fault: ${kind}`);
  }
}

/** The JWT's claims (no check: the worker made it). */
function claimsOf(jwt) {
  try {
    return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8'));
  } catch {
    return {};
  }
}

/** One request to the worker: {status, headers, text, json}; status 0 when no answer came. */
export async function send(base, method, path, { body, access } = {}) {
  const headers = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (access) headers.authorization = 'Bearer ' + access;
  try {
    const res = await fetch(base + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      redirect: 'manual',
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    const text = await res.text();
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, headers: Object.fromEntries(res.headers), text, json };
  } catch (e) {
    return { status: 0, headers: {}, text: String(e?.name ?? e), json: undefined };
  }
}

/** The worker's own error code of an answer (`X-WX-Edge-Error`), if it is one. */
export function edgeError(r) {
  return r.headers['x-wx-edge-error'] ? r.json?.error : undefined;
}

export class Client {
  /**
   * @param {object} o
   * @param {string} o.base     the worker's URL
   * @param {string} o.id       this client's name
   * @param {string} o.user     the simulator's user (the part of the wx.login code before '.')
   * @param {function} o.random seeded [0, 1)
   * @param {Ledger} o.ledger
   * @param {function(): string} o.phoneCode  a fresh `phone-<digits>` code (single use, as WeChat's)
   */
  constructor({ base, id, user, random, ledger, phoneCode }) {
    Object.assign(this, { base, id, user, random, ledger, phoneCode });
    this.tokens = null; // { access, refresh, sid }
    this.session = null;
    this.codes = 0;
    this.requests = 0;
    this.openid = null;
  }

  between(lo, hi) {
    return lo + Math.floor(this.random() * (hi - lo + 1));
  }

  /** One request; its answer is counted and, when `s` is given, told to that session's history. */
  async call(s, endpoint, method, path, opts) {
    const r = await send(this.base, method, path, opts);
    this.ledger.saw(endpoint, r);
    // A served proxied request is the common case: history keeps the rest.
    if (!(endpoint === 'proxy' && r.status === 200)) {
      this.ledger.event(s, `${endpoint} ${r.status === 0 ? 'no answer' : r.status} ${edgeError(r) ?? ''}`.trim());
    }
    return r;
  }

  /** The worker's 429 / 503 is waited out (Retry-After, at most 10 s) and the request sent once more. */
  async withRetry(attempt, deadline = Infinity) {
    const r = await attempt();
    if (!((r.status === 503 || r.status === 429) && r.headers['x-wx-edge-error'])) return r;
    const wait = Math.min(Number(r.headers['retry-after']) || 1, MAX_RETRY_WAIT) * 1000;
    await sleep(Math.max(0, Math.min(wait, deadline - Date.now())));
    return attempt();
  }

  /** Takes a token answer, as the client library stores it. */
  take(json, what) {
    const claims = claimsOf(json.access_token);
    const sid = claims.sid;
    if (!sid) {
      this.ledger.note(`${what}: answer without a readable access token`);
      return;
    }
    const s = this.ledger.session(sid, this.user, this.id);
    const refresh = typeof json.refresh_token === 'string' && json.refresh_token ? json.refresh_token : null;
    if (this.tokens && this.tokens.sid !== sid)
      this.ledger.note(`${what}: answer for another session than the one held`);
    this.tokens = { access: json.access_token, refresh: refresh ?? this.tokens?.refresh, sid };
    this.session = s;
    this.openid = json.openid ?? this.openid;
    s.access.push(json.access_token);
    if (refresh && s.refresh.at(-1) !== refresh) s.refresh.push(refresh);
    // Only the newest few matter for the checks.
    if (s.access.length > 4) s.access.shift();
    if (s.refresh.length > 4) s.refresh.shift();
  }

  /** The session ended without this client asking: a false logout, unless a lost refresh answer explains it. */
  ended(s, how) {
    if (s.state === 'live') {
      if (s.lostAnswer) {
        s.state = 'reused-after-lost-answer';
        this.ledger.expectedReuse.push({ sid: s.sid, client: this.id, how });
      } else {
        s.state = 'falsely-ended';
        this.ledger.falseLogouts.push({ sid: s.sid, client: this.id, how, events: [...s.events] });
      }
    }
    this.ledger.event(s, `ended: ${how}`);
    if (this.session === s) {
      this.tokens = null;
      this.session = null;
    }
  }

  async login(deadline) {
    const r = await this.withRetry(() => {
      // The simulator's user is the part before the '.'; the rest makes the code unique.
      const code = `${this.user}.${this.id}-${++this.codes}`;
      return this.call(null, 'login', 'POST', '/auth/login', { body: { code } });
    }, deadline);
    if (r.status === 200 && r.json?.access_token) {
      this.tokens = null;
      this.session = null;
      this.take(r.json, 'login');
      this.ledger.event(this.session, `login 200 (${this.id})`);
      return true;
    }
    this.ledger.note(`login gave up: ${r.status} ${edgeError(r) ?? ''}`.trim());
    return false;
  }

  /** POST /auth/refresh: 'ok', 'dead' (the session is over) or 'failed' (try later). */
  async refresh(deadline) {
    const t = this.tokens;
    const s = this.session;
    if (!t) return 'dead';
    const r = await this.withRetry(
      () => this.call(s, 'refresh', 'POST', '/auth/refresh', { body: { refresh_token: t.refresh } }),
      deadline,
    );
    if (r.status === 200 && r.json?.access_token) {
      if (this.session === s) this.take(r.json, 'refresh');
      return 'ok';
    }
    if (r.status === 0) s.lostAnswer = true;
    if (r.status === 401 && DEAD_REFRESH.includes(edgeError(r))) {
      this.ended(s, `refresh answered 401 ${edgeError(r)}`);
      return 'dead';
    }
    return 'failed';
  }

  async proxy(deadline) {
    const path = `/api/soak/${this.id}/${++this.requests}`;
    const get = () =>
      this.withRetry(() => this.call(this.session, 'proxy', 'GET', path, { access: this.tokens.access }), deadline);
    let r = await get();
    const code = edgeError(r);
    if (r.status === 401 && RENEWABLE.includes(code)) {
      this.ledger.note(`proxy 401 ${code} on a session the client holds (renewed by refreshing)`);
      if ((await this.refresh(deadline)) !== 'ok') return;
      r = await get();
    }
    if (r.status === 200) this.checkIdentity(r);
  }

  /** The origin must see this client's user, never another. */
  checkIdentity(r) {
    const seen = r.json?.headers?.['x-wx-openid'];
    if (this.openid && seen !== this.openid) {
      this.ledger.wrongIdentity.push({ client: this.id, expected: this.openid, seen: seen ?? null });
    }
  }

  /** POST /auth/phone with a fresh phone code; a renewable 401 is renewed and the bind sent once more. */
  async bind(deadline) {
    const code = this.phoneCode();
    const t = this.tokens;
    const s = this.session;
    const post = (access) =>
      this.withRetry(() => this.call(s, 'phone', 'POST', '/auth/phone', { body: { code }, access }), deadline);
    let r = await post(t.access);
    if (r.status === 401 && RENEWABLE.includes(edgeError(r))) {
      if ((await this.refresh(deadline)) !== 'ok') return;
      r = await post(this.tokens.access);
    }
    if (r.status === 200 && r.json?.access_token) {
      if (this.session === s) this.take(r.json, 'phone');
    } else {
      this.ledger.note(`phone bind not answered with 200: ${r.status} ${edgeError(r) ?? ''}`.trim());
    }
  }

  /** POST /auth/logout (after a refresh, as `client.logout()` may do); the tokens are forgotten whatever the answer. */
  async logout(deadline, refreshFirst) {
    if (refreshFirst && (await this.refresh(deadline)) !== 'ok') {
      if (!this.tokens) return;
    }
    const t = this.tokens;
    const s = this.session;
    const r = await this.withRetry(
      () => this.call(s, 'logout', 'POST', '/auth/logout', { access: t.access }),
      deadline,
    );
    if (r.status === 204 || r.status === 401) {
      if (s.state === 'live') s.state = 'logged-out';
      s.loggedOutAt = Date.now();
    } else if (s.state === 'live') {
      s.state = 'logout-unconfirmed';
    }
    this.tokens = null;
    this.session = null;
  }

  pick() {
    let x = this.random() * 100;
    for (const [name, weight] of ACTIONS) {
      if ((x -= weight) < 0) return name;
    }
    return 'proxy';
  }

  /** Until `deadline` (and at most `maxActions`): log in when needed, then one action after another. */
  async run(deadline, maxActions) {
    for (let n = 0; n < maxActions && Date.now() < deadline; n++) {
      if (!this.tokens) {
        if (!(await this.login(deadline))) {
          await sleep(this.between(200, 1000));
          continue;
        }
      }
      const action = this.pick();
      switch (action) {
        case 'proxy':
          await this.proxy(deadline);
          break;
        case 'refresh':
          await this.refresh(deadline);
          break;
        case 'bind':
          await this.bind(deadline);
          break;
        case 'double-tap':
          this.ledger.event(this.session, 'double tap on the phone button');
          await Promise.all([this.bind(deadline), this.bind(deadline)]);
          break;
        case 'bind+refresh':
          this.ledger.event(this.session, 'phone bind racing a refresh');
          await Promise.all([this.bind(deadline), this.refresh(deadline)]);
          break;
        case 'logout':
          await this.logout(deadline, false);
          break;
        case 'refresh+logout':
          await this.logout(deadline, true);
          break;
        case 'idle':
          await sleep(Math.max(0, Math.min(this.between(5000, 15000), deadline - Date.now())));
          break;
      }
      await sleep(this.between(50, 400));
    }
  }
}
