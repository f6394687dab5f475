// Checks an answer of the worker against openapi.yaml: status, headers and
// body of the operation that answered it. stack.mjs's `call` runs it on
// every answer, so an integration test whose answer the contract does not
// describe fails.
//
//   const problems = contractProblems('POST', '/auth/login', { status, headers, text })
//   assertMatchesContract('POST', '/auth/login', response)   // throws an AssertionError listing them
//
// What is checked: the worker's own endpoints (`/auth`, `/auth/*`,
// `/.well-known/jwks.json`) always; the WeChat relay and the proxy only
// where the worker answered itself (the answer carries X-WX-Edge-Error):
// WeChat's and the origin's answers are theirs. A method a path does not
// take must get the 405 (or, under /auth/admin/ and /auth/service/, the 404)
// the description promises; an OPTIONS answered 204 is a CORS preflight.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { AssertionError } from 'node:assert';
import { parse } from 'yaml';
import Ajv2020 from 'ajv/dist/2020.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const spec = parse(readFileSync(path.join(root, 'openapi.yaml'), 'utf8'));

const SCHEMAS_ID = 'wx-edge-openapi';
/** A deep copy with `#/components/schemas/X` refs pointing into the one schema document ajv holds. */
const rewriteRefs = (node, prefix) =>
  Array.isArray(node)
    ? node.map((n) => rewriteRefs(n, prefix))
    : node && typeof node === 'object'
      ? Object.fromEntries(
          Object.entries(node).map(([k, v]) => [
            k,
            k === '$ref' && typeof v === 'string'
              ? v.replace('#/components/schemas/', `${prefix}#/$defs/`)
              : rewriteRefs(v, prefix),
          ]),
        )
      : node;

const ajv = new Ajv2020({ allErrors: true, strict: true, strictTypes: false });
ajv.addSchema({ $id: SCHEMAS_ID, $defs: rewriteRefs(spec.components.schemas, '') });
const compiled = new WeakMap();
function validatorFor(schema) {
  if (!compiled.has(schema)) compiled.set(schema, ajv.compile(rewriteRefs(schema, SCHEMAS_ID)));
  return compiled.get(schema);
}

/** Follows a local `$ref` (`#/components/...`). */
function deref(node) {
  let n = node;
  for (let hops = 0; n && typeof n.$ref === 'string'; hops++) {
    if (hops > 8) throw new Error(`openapi.yaml: $ref loop at ${node.$ref}`);
    n = n.$ref
      .slice(2)
      .split('/')
      .reduce((o, k) => o?.[k.replace(/~1/g, '/').replace(/~0/g, '~')], spec);
    if (n === undefined) throw new Error(`openapi.yaml: unresolved $ref ${node.$ref}`);
  }
  return n;
}

const PROXY = '/{path}';
const RELAY = '/auth/service/wechat/{path}';
// The worker's own paths, templated: `{openid}` is one segment; the relay's `{path}` may span several.
const templates = Object.keys(spec.paths)
  .filter((p) => p !== PROXY)
  .map((p) => ({
    p,
    re: new RegExp(
      '^' +
        p
          .split(/(\{[^}]+\})/)
          .map((part, i) => (i % 2 ? (p === RELAY ? '.+' : '[^/]+') : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
          .join('') +
        '$',
    ),
  }));

const isOwnPath = (p) => p === '/auth' || p.startsWith('/auth/') || p === '/.well-known/jwks.json';
const responses = spec.components.responses;

/** Problems with one answer against one response object of the description. */
function responseProblems(response, method, res) {
  const problems = [];
  const r = deref(response);
  for (const [name, h] of Object.entries(r.headers ?? {})) {
    const header = deref(h);
    const value = res.headers.get(name);
    if (value === null) {
      if (header.required) problems.push(`header ${name} is missing`);
      continue;
    }
    if (header.schema) {
      const validate = validatorFor(header.schema);
      if (!validate(value))
        problems.push(`header ${name}: ${JSON.stringify(value)} ${ajv.errorsText(validate.errors)}`);
    }
  }
  const marker = res.headers.get('x-wx-edge-error');
  if (method === 'HEAD') return problems;
  const content = r.content;
  if (!content) {
    if (res.text !== '') problems.push(`a body where the description has none: ${res.text.slice(0, 200)}`);
    return problems;
  }
  if (content['*/*']) return problems;
  const media = content['application/json'];
  if (!media) return [...problems, `no JSON content in the description (${Object.keys(content)})`];
  const type = res.headers.get('content-type') ?? '';
  if (!/^application\/json\b/i.test(type)) problems.push(`content-type ${JSON.stringify(type)}, not JSON`);
  let body;
  try {
    body = JSON.parse(res.text);
  } catch {
    return [...problems, `the body is not JSON: ${res.text.slice(0, 200)}`];
  }
  const validate = validatorFor(media.schema);
  if (!validate(body)) problems.push(`body ${JSON.stringify(body).slice(0, 300)}: ${ajv.errorsText(validate.errors)}`);
  if (marker !== null && body?.error !== marker)
    problems.push(`X-WX-Edge-Error ${marker} but the body says ${body?.error}`);
  return problems;
}

/**
 * What is wrong with the worker's answer `res` ({status, headers, text}) to
 * `method` `url` (a path, query allowed), by openapi.yaml; [] when nothing.
 */
export function contractProblems(method, url, res) {
  const m = method.toUpperCase();
  const p = url.split(/[?#]/)[0];
  const marker = res.headers.get('x-wx-edge-error');
  const own = (response) => responseProblems(response, m, res);
  // A misconfigured worker answers every request 500.
  const misconfigured = () => (res.status === 500 ? own(responses.ServerMisconfigured) : null);

  if (!isOwnPath(p)) {
    if (marker === null) return []; // the origin's answer
    const item = deref(spec.paths[PROXY]);
    const op = item[m === 'HEAD' ? 'get' : m.toLowerCase()] ?? item.get;
    const response = op.responses[String(res.status)];
    if (!response) return misconfigured() ?? [`${res.status} ${marker}: not a status the proxy answers itself`];
    return own(response);
  }
  const match = templates.find((t) => t.re.test(p));
  if (!match) {
    return res.status === 404
      ? own(responses.NotFound)
      : (misconfigured() ?? [`${res.status} for an unknown /auth path (404 expected)`]);
  }
  const item = deref(spec.paths[match.p]);
  const op = item[m === 'HEAD' ? 'get' : m.toLowerCase()];
  if (!op) {
    if (m === 'OPTIONS' && res.status === 204) return []; // a CORS preflight (CORS_ORIGINS)
    const hidden = p.startsWith('/auth/admin/') || p.startsWith('/auth/service/');
    if (hidden)
      return res.status === 404
        ? own(responses.NotFound)
        : (misconfigured() ?? [`${res.status} for ${m} (404 expected)`]);
    return res.status === 405
      ? own(responses.MethodNotAllowed)
      : (misconfigured() ?? [`${res.status} for ${m} (405 expected)`]);
  }
  // The relay's answers without the marker are WeChat's: only `default` (no-store) holds for them.
  if (op.responses.default && marker === null) return own(op.responses.default);
  const response = op.responses[String(res.status)];
  if (!response) return [`status ${res.status} is not in the description of ${m} ${match.p}`];
  return own(response);
}

/** Compiles every schema the description has (bodies and headers); the number compiled. */
export function compileAll() {
  let n = 0;
  const walk = (node) => {
    if (!node || typeof node !== 'object') return;
    if (Array.isArray(node)) return node.forEach(walk);
    for (const [k, v] of Object.entries(node)) {
      if (k === 'schema' && v && typeof v === 'object') {
        validatorFor(v);
        n++;
      } else walk(v);
    }
  };
  walk(spec.paths);
  walk(spec.components.responses);
  walk(spec.components.headers);
  walk(spec.components.pathItems);
  return n;
}

/** Throws an AssertionError naming every problem of the answer. */
export function assertMatchesContract(method, url, res) {
  const problems = contractProblems(method, url, res);
  if (problems.length) {
    throw new AssertionError({
      message: `the worker's answer to ${method} ${url} (${res.status}) does not match openapi.yaml:\n  ${problems.join('\n  ')}`,
    });
  }
}
