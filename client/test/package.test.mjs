// The client as a user installs it: `npm pack` of client/, installed into a
// fresh temporary project (no registry needed: the package has no
// dependencies), then `import` (ESM), `require` (CommonJS) and TypeScript
// (the declarations, resolved through `exports`) each in that project.
//
// Run: node --test client/test/package.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readdirSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const clientDir = fileURLToPath(new URL('..', import.meta.url));
const root = path.resolve(clientDir, '..');
const tsc = path.join(root, 'node_modules', '.bin', 'tsc');
const pkg = JSON.parse(readFileSync(path.join(clientDir, 'package.json'), 'utf8'));

let dir, project;

function run(cmd, args, cwd) {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'wx-edge-client-pack-'));
  // --ignore-scripts: packing runs nothing of ours.
  run('npm', ['pack', '--ignore-scripts', '--pack-destination', dir, clientDir], clientDir);
  project = path.join(dir, 'app');
  run('mkdir', ['-p', project]);
  writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
  const tarball = readdirSync(dir).find((f) => f.endsWith('.tgz'));
  assert.equal(tarball, `${pkg.name}-${pkg.version}.tgz`);
  run('npm', ['install', '--no-audit', '--no-fund', '--offline', '--ignore-scripts', path.join(dir, tarball)], project);
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('the tarball holds the entry points, lib/ and the declarations, and nothing of the tests', () => {
  const installed = path.join(project, 'node_modules', pkg.name);
  for (const f of [
    'index.js',
    'index.mjs',
    'index.d.ts',
    'index.d.mts',
    'README.md',
    'lib/session.js',
    'package.json',
  ]) {
    assert.ok(existsSync(path.join(installed, f)), f);
  }
  assert.ok(!existsSync(path.join(installed, 'test')));
  assert.ok(!existsSync(path.join(installed, 'types-test')));
});

test('import (ESM) in the fresh project', () => {
  writeFileSync(
    path.join(project, 'esm.mjs'),
    `import auth, { createAuth, AuthError, DEFAULT_STORAGE_KEY } from '${pkg.name}';
const storage = new Map();
const api = {
  login: (o) => o.success({ code: 'c' }),
  request: (o) => o.fail({ errMsg: 'request:fail offline' }),
  getStorageSync: (k) => storage.get(k) || '',
  setStorageSync: (k, v) => storage.set(k, v),
  removeStorageSync: (k) => storage.delete(k),
};
const a = createAuth({ baseUrl: 'https://edge.example.com', api });
const e = await a.login().catch((x) => x);
console.log(JSON.stringify({
  same: auth.createAuth === createAuth,
  key: DEFAULT_STORAGE_KEY,
  error: e instanceof AuthError ? e.code : String(e),
}));
`,
  );
  const out = JSON.parse(run(process.execPath, ['esm.mjs'], project));
  assert.deepEqual(out, { same: true, key: 'wx-edge.auth', error: 'network_error' });
});

test('require (CommonJS) in the fresh project: the same exports, one AuthError class', () => {
  writeFileSync(
    path.join(project, 'cjs.cjs'),
    `const lib = require('${pkg.name}');
const { createAuth, AuthError } = lib;
import('${pkg.name}').then((esm) => {
  console.log(JSON.stringify({
    createAuth: typeof createAuth,
    defaultIsSelf: lib.default === lib,
    sameClass: esm.AuthError === AuthError,
    pkgJson: require('${pkg.name}/package.json').name,
  }));
});
`,
  );
  const out = JSON.parse(run(process.execPath, ['cjs.cjs'], project));
  assert.deepEqual(out, { createAuth: 'function', defaultIsSelf: true, sameClass: true, pkgJson: pkg.name });
});

test(
  'TypeScript in the fresh project finds the declarations for import and require',
  { skip: !existsSync(tsc) && 'no tsc' },
  () => {
    writeFileSync(
      path.join(project, 'use.mts'),
      `import { createAuth, AuthError } from '${pkg.name}';
declare const api: Parameters<typeof createAuth>[0]['api'];
const auth = createAuth({ baseUrl: 'https://edge.example.com', api });
export const p: Promise<unknown> = auth.request({ url: '/api/x' });
export const e: AuthError | null = null;
`,
    );
    writeFileSync(
      path.join(project, 'use.cts'),
      `import lib = require('${pkg.name}');
export const f: typeof lib.createAuth = lib.createAuth;
`,
    );
    writeFileSync(
      path.join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', strict: true, noEmit: true, types: [] },
        files: ['use.mts', 'use.cts'],
      }),
    );
    run(tsc, ['-p', '.'], project);
    // And a misuse is an error, so the check above could fail.
    writeFileSync(
      path.join(project, 'use.cts'),
      `import lib = require('${pkg.name}');\nlib.createAuth({ baseUrl: 1 });\n`,
    );
    assert.throws(() => run(tsc, ['-p', '.'], project));
  },
);
