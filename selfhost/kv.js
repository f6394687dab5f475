// The SESSIONS KV namespace for the self-host profile: a small workerd
// service that speaks the protocol workerd's KV binding uses (each `get`,
// `put`, `delete` and `list` arrives as an HTTP request, see
// src/workerd/api/kv.c++ in workerd) and keeps the data in SQLite, in one
// Durable Object on the profile's localDisk (the same data directory as the
// session authority).
//
//   GET    /<key>?urlencoded=true            200 value (+ CF-KV-Metadata) | 404
//   PUT    /<key>?urlencoded=true[&expiration=S | &expiration_ttl=S]
//                                             body = value, CF-KV-Metadata = JSON
//   DELETE /<key>?urlencoded=true            200 (also when absent)
//   GET    /?prefix=&key_count_limit=&cursor= {keys:[{name,expiration?,metadata?}], list_complete, cursor?}
//
// Only the worker reaches this service (it has no socket of its own). Bulk
// reads (`POST /bulk/get`) are not served: the worker never makes them.
import { DurableObject } from 'cloudflare:workers';

/** KV's largest page of a list, and its default. */
const MAX_LIST = 1000;
/** Expired rows removed per write (the rest go with later writes). */
const PURGE_BATCH = 100;

export default {
  async fetch(request, env) {
    // One namespace, one object: every operation on it is served in order by
    // the same SQLite database.
    const store = env.STORE.get(env.STORE.idFromName('SESSIONS'));
    return store.fetch(request);
  },
};

export class KvStore extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(
      `CREATE TABLE IF NOT EXISTS kv (
         key TEXT PRIMARY KEY,
         value BLOB NOT NULL,
         metadata TEXT,
         expiration INTEGER
       )`,
    );
    this.sql.exec('CREATE INDEX IF NOT EXISTS kv_expiration ON kv (expiration) WHERE expiration IS NOT NULL');
  }

  async fetch(request) {
    const url = new URL(request.url);
    const now = Math.floor(Date.now() / 1000);
    try {
      if (url.pathname === '/' && request.method === 'GET') return this.list(url.searchParams, now);
      const key = keyOf(url);
      if (key === undefined) return text(400, 'bad key');
      switch (request.method) {
        case 'GET':
          return this.get(key, now);
        case 'PUT':
          return await this.put(key, request, url.searchParams, now);
        case 'DELETE':
          this.sql.exec('DELETE FROM kv WHERE key = ?', key);
          return text(200, '');
        default:
          return text(405, 'method not allowed');
      }
    } catch (e) {
      // The binding turns any non-2xx into an exception in the worker,
      // which answers 503 store_unavailable: nothing else is needed here.
      console.error(`kv ${request.method} failed: ${e}`);
      return text(500, 'kv failed');
    }
  }

  get(key, now) {
    const row = this.sql.exec('SELECT value, metadata, expiration FROM kv WHERE key = ?', key).toArray().at(0);
    if (!row || expired(row, now)) return text(404, 'not found');
    const headers = new Headers();
    if (row.metadata !== null) headers.set('CF-KV-Metadata', row.metadata);
    if (row.expiration !== null) headers.set('Expiration', String(row.expiration));
    return new Response(row.value, { status: 200, headers });
  }

  async put(key, request, params, now) {
    let expiration = null;
    if (params.has('expiration')) expiration = wholeSeconds(params.get('expiration'));
    else if (params.has('expiration_ttl')) {
      const ttl = wholeSeconds(params.get('expiration_ttl'));
      expiration = ttl === undefined ? undefined : now + ttl;
    }
    if (expiration === undefined) return text(400, 'bad expiration');
    const metadata = request.headers.get('CF-KV-Metadata');
    const value = await request.arrayBuffer();
    this.sql.exec(
      `INSERT INTO kv (key, value, metadata, expiration) VALUES (?, ?, ?, ?)
       ON CONFLICT (key) DO UPDATE SET value = excluded.value, metadata = excluded.metadata,
         expiration = excluded.expiration`,
      key,
      value,
      metadata,
      expiration,
    );
    this.sql.exec('DELETE FROM kv WHERE key IN (SELECT key FROM kv WHERE expiration <= ? LIMIT ?)', now, PURGE_BATCH);
    return text(200, '');
  }

  list(params, now) {
    const prefix = params.get('prefix') ?? '';
    const asked = Number(params.get('key_count_limit') ?? MAX_LIST);
    const limit = Number.isInteger(asked) && asked > 0 ? Math.min(asked, MAX_LIST) : MAX_LIST;
    const after = params.has('cursor') ? fromCursor(params.get('cursor')) : '';
    if (after === undefined) return text(400, 'bad cursor');
    const rows = this.sql
      .exec(
        `SELECT key, metadata, expiration FROM kv
         WHERE key > ? AND substr(key, 1, length(?)) = ? AND (expiration IS NULL OR expiration > ?)
         ORDER BY key LIMIT ?`,
        after,
        prefix,
        prefix,
        now,
        limit + 1,
      )
      .toArray();
    const page = rows.slice(0, limit);
    const keys = page.map((r) => {
      const k = { name: r.key };
      if (r.expiration !== null) k.expiration = r.expiration;
      if (r.metadata !== null) k.metadata = JSON.parse(r.metadata);
      return k;
    });
    const complete = rows.length <= limit;
    const body = { keys, list_complete: complete };
    if (!complete) body.cursor = toCursor(page[page.length - 1].key);
    return Response.json(body);
  }
}

/** The key of a single-key request, or undefined if the path is not one. */
function keyOf(url) {
  const raw = url.pathname.slice(1);
  if (raw === '') return undefined;
  if (url.searchParams.get('urlencoded') !== 'true') return raw;
  try {
    return decodeURIComponent(raw);
  } catch {
    return undefined;
  }
}

function expired(row, now) {
  return row.expiration !== null && row.expiration <= now;
}

function wholeSeconds(s) {
  const n = Number(s);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

function toCursor(key) {
  return btoa(String.fromCharCode(...new TextEncoder().encode(key)));
}

function fromCursor(cursor) {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(atob(cursor), (c) => c.charCodeAt(0)));
  } catch {
    return undefined;
  }
}

function text(status, body) {
  return new Response(body, { status, headers: { 'Content-Type': 'text/plain' } });
}
