#!/usr/bin/env node
// The SESSIONS KV namespace of a running self-host profile, for operators:
// what `wrangler kv key …` / `wrangler kv bulk put` are on Cloudflare. It
// talks to the profile's KV service over the Unix socket scripts/selfhost
// opens in the data directory (DIR/kv.sock), in the protocol workerd's KV
// binding speaks (selfhost/kv.js), so the process keeps running.
//
//   node scripts/selfhost-kv.mjs [--data DIR] get KEY
//   node scripts/selfhost-kv.mjs [--data DIR] put KEY VALUE
//   node scripts/selfhost-kv.mjs [--data DIR] delete KEY
//   node scripts/selfhost-kv.mjs [--data DIR] list [PREFIX]
//   node scripts/selfhost-kv.mjs [--data DIR] bulk FILE.json   # [{"key","value"}], as scripts/allowlist-csv.mjs writes
//
// DIR defaults to $WX_EDGE_DATA, else selfhost/data (scripts/selfhost's).
// Run it as the service user (the socket is only theirs).
import { request } from 'node:http';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** One KV operation over the socket: resolves to { status, body }. */
export function kvRequest(socketPath, method, target, body) {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path: target, headers: { host: 'kv' } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

const keyPath = (key) => `/${encodeURIComponent(key)}?urlencoded=true`;

/** Every key under `prefix`, following the cursor. */
async function listAll(socket, prefix) {
  const names = [];
  let cursor;
  do {
    const q = new URLSearchParams({ prefix });
    if (cursor) q.set('cursor', cursor);
    const r = await kvRequest(socket, 'GET', `/?${q}`);
    if (r.status !== 200) throw new Error(`list failed: ${r.status} ${r.body}`);
    const page = JSON.parse(r.body);
    names.push(...page.keys.map((k) => k.name));
    cursor = page.list_complete ? undefined : page.cursor;
  } while (cursor);
  return names;
}

async function main(argv) {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { data: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
  });
  const [command, ...args] = positionals;
  const usage = readFileSync(fileURLToPath(import.meta.url), 'utf8')
    .split('\n')
    .slice(7, 14)
    .join('\n');
  if (values.help || !command) {
    console.log(usage.replace(/^\/\/ ?/gm, ''));
    return values.help ? 0 : 2;
  }
  const data = values.data ?? process.env.WX_EDGE_DATA ?? path.join(root, 'selfhost', 'data');
  const socket = path.join(path.resolve(data), 'kv.sock');
  const need = (n) => {
    if (args.length !== n) throw new Error(`${command} takes ${n} argument(s); see --help`);
  };
  switch (command) {
    case 'get': {
      need(1);
      const r = await kvRequest(socket, 'GET', keyPath(args[0]));
      if (r.status === 404) {
        console.error('not found');
        return 1;
      }
      if (r.status !== 200) throw new Error(`get failed: ${r.status}`);
      process.stdout.write(r.body + '\n');
      return 0;
    }
    case 'put': {
      need(2);
      const r = await kvRequest(socket, 'PUT', keyPath(args[0]), args[1]);
      if (r.status !== 200) throw new Error(`put failed: ${r.status} ${r.body}`);
      return 0;
    }
    case 'delete': {
      need(1);
      const r = await kvRequest(socket, 'DELETE', keyPath(args[0]));
      if (r.status !== 200) throw new Error(`delete failed: ${r.status}`);
      return 0;
    }
    case 'list': {
      if (args.length > 1) throw new Error('list takes at most a prefix');
      for (const name of await listAll(socket, args[0] ?? '')) console.log(name);
      return 0;
    }
    case 'bulk': {
      need(1);
      const entries = JSON.parse(readFileSync(args[0], 'utf8'));
      if (
        !Array.isArray(entries) ||
        !entries.every((e) => typeof e?.key === 'string' && typeof e?.value === 'string')
      ) {
        throw new Error('bulk takes a JSON array of {"key": "...", "value": "..."}');
      }
      for (const { key, value } of entries) {
        const r = await kvRequest(socket, 'PUT', keyPath(key), value);
        if (r.status !== 200) throw new Error(`put ${key} failed: ${r.status} ${r.body}`);
      }
      console.error(`${entries.length} key(s) written`);
      return 0;
    }
    default:
      throw new Error(`unknown command ${command}; see --help`);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      const hint =
        e.code === 'ENOENT' || e.code === 'ECONNREFUSED' ? ' (is scripts/selfhost running with this --data?)' : '';
      console.error(`selfhost-kv: ${e.message}${hint}`);
      process.exit(1);
    },
  );
}
