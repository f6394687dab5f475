// echo-origin.mjs — a demo origin API for development and tests only.
//
// It stands behind the worker (`ORIGIN_URL=<echo url>`) and answers every
// request with a JSON description of exactly what it received, so tests can
// check what the proxy passed on (identity headers added, forged ones and
// Authorization stripped, method/path/query/body untouched):
//
//   {"method", "path", "query", "url",
//    "headers":    {lower-cased name: value, duplicates joined with ", "},
//    "rawHeaders": [[name, value], ...]   as received, in order,
//    "body": "<request body as UTF-8>", "bodyLength": <bytes>}
//
// `path` and `query` are the raw, undecoded parts of the request target
// (`query` without the leading '?'); `url` is the whole target as received.
//
// A few paths behave differently, to test pass-through of responses. They are
// matched on the END of the path, so they also work when ORIGIN_URL carries a
// base path (e.g. /api/status/404):
//   …/status/NNN     status NNN, header `X-Origin-Test: yes`, the JSON echo as
//                    body (no body for 204 and 304)
//   …/redirect       302 `Location: /elsewhere` (never followed here)
//   …/big?bytes=N    N bytes of 'a', streamed with chunked encoding
//   …/set-cookie     two separate Set-Cookie headers: `a=1; Path=/`, `b=2; Path=/`
//
// CLI: node tests/support/echo-origin.mjs --port 8789

import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { serve } from './serve.mjs';

/** Size of each chunk written by /big. */
const CHUNK = 64 * 1024;
/** Upper bound for /big, so a typo cannot fill a disk or hang a test for long. */
const MAX_BIG = 1024 * 1024 * 1024;

/**
 * Start an echo origin.
 *
 * @param {object} [options]
 * @param {number} [options.port=0]   0 picks a free port
 * @param {string} [options.host='127.0.0.1']
 * @param {number} [options.keepRequests=Infinity]  how many entries `requests` keeps (the oldest go first)
 */
export async function startEchoOrigin({ port = 0, host = '127.0.0.1', keepRequests = Infinity } = {}) {
  /** Everything received, newest last (the same objects that were echoed). */
  const requests = [];

  const server = createServer(async (req, res) => {
    let body;
    try {
      body = await readBody(req);
    } catch {
      return; // the client went away mid-body
    }
    const echo = describe(req, body);
    requests.push(echo);
    if (requests.length > keepRequests) requests.splice(0, requests.length - keepRequests);
    route(echo, req, res);
  });

  return { ...(await serve(server, { port, host })), requests };
}

/** Build the echo of one request. */
function describe(req, body) {
  const target = req.url;
  const q = target.indexOf('?');
  const rawHeaders = [];
  const headers = {};
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const [name, value] = [req.rawHeaders[i], req.rawHeaders[i + 1]];
    rawHeaders.push([name, value]);
    const key = name.toLowerCase();
    headers[key] = key in headers ? `${headers[key]}, ${value}` : value;
  }
  return {
    method: req.method,
    path: q === -1 ? target : target.slice(0, q),
    query: q === -1 ? '' : target.slice(q + 1),
    url: target,
    headers,
    rawHeaders,
    body: body.toString('utf8'),
    bodyLength: body.length,
  };
}

function route(echo, req, res) {
  const status = /\/status\/(\d{3})$/.exec(echo.path);
  if (status) {
    const code = Number(status[1]);
    if (code < 200 || code > 599) return sendJson(res, 400, { error: 'status must be 200..599' });
    res.setHeader('X-Origin-Test', 'yes');
    if (code === 204 || code === 304) {
      res.writeHead(code);
      return res.end();
    }
    return sendJson(res, code, echo);
  }
  if (echo.path.endsWith('/redirect')) {
    res.setHeader('Location', '/elsewhere');
    return sendJson(res, 302, echo);
  }
  if (echo.path.endsWith('/set-cookie')) {
    res.setHeader('Set-Cookie', ['a=1; Path=/', 'b=2; Path=/']);
    return sendJson(res, 200, echo);
  }
  if (echo.path.endsWith('/big')) {
    const bytes = Number(new URLSearchParams(echo.query).get('bytes') ?? 0);
    if (!Number.isSafeInteger(bytes) || bytes < 0 || bytes > MAX_BIG) {
      return sendJson(res, 400, { error: `bytes must be an integer in 0..${MAX_BIG}` });
    }
    return streamBig(res, bytes);
  }
  return sendJson(res, 200, echo);
}

function sendJson(res, status, value) {
  const text = JSON.stringify(value);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

/** Write `total` bytes of 'a' without a Content-Length (chunked), honouring backpressure. */
function streamBig(res, total) {
  res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
  const chunk = Buffer.alloc(CHUNK, 'a');
  let left = total;
  const pump = () => {
    while (left > 0 && !res.destroyed) {
      const n = Math.min(left, CHUNK);
      left -= n;
      if (!res.write(n === CHUNK ? chunk : chunk.subarray(0, n))) return res.once('drain', pump);
    }
    if (!res.destroyed) res.end();
  };
  pump();
}

/** Read the whole request body (the echo needs it; requests in tests are modest). */
function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
    req.on('aborted', () => reject(new Error('aborted')));
  });
}

// ---- CLI -------------------------------------------------------------------

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '8789' },
      host: { type: 'string', default: '127.0.0.1' },
    },
  });
  // A long dev session should not hoard every body it ever saw.
  const origin = await startEchoOrigin({ port: Number(values.port), host: values.host, keepRequests: 100 });
  // stdout carries only the URL, so scripts can read it; the note goes to stderr.
  console.log(origin.url);
  console.error('echo-origin: demo origin that echoes each request as JSON (dev/test only; Ctrl-C stops it)');
  const stop = () => origin.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
