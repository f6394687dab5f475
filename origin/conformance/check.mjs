// The conformance runner behind ./check. Each verifier has an adapter that
// reads the vectors file, verifies every case with its clock set to `now`
// and the file's JWKS as its fetcher, and prints one JSON line per case:
// {"name", "valid", "sub"?, "error"?}. A case with "appid" is verified by a
// verifier that requires that appid; each "jwks_urls" entry is a verifier
// constructed with that URL ("valid": accepted, no fetch). This runner
// compares those verdicts with the file, so no adapter grades itself.
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const origin = path.resolve(here, '..')
const root = path.resolve(origin, '..')

const args = process.argv.slice(2)
const strict = args.includes('--strict') || process.env.WX_ORIGIN_STRICT === '1'
const files = args.filter((a) => !a.startsWith('--'))
if (files.length !== 1) {
  console.error('usage: origin/conformance/check VECTORS.json [--strict]')
  process.exit(2)
}
const file = path.resolve(files[0])
const vectors = JSON.parse(readFileSync(file, 'utf8'))
for (const k of ['jwks', 'now', 'audience', 'issuer', 'cases']) {
  if (!(k in vectors)) throw new Error(`${file}: no "${k}"`)
}

/** Runs a command; returns {ok, status, stdout, stderr}. */
function run(cmd, cmdArgs, opts = {}) {
  const r = spawnSync(cmd, cmdArgs, { encoding: 'utf8', timeout: 120_000, maxBuffer: 64 << 20, ...opts })
  return { ok: r.status === 0 && !r.error, status: r.status, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : '') }
}
const has = (cmd) => run('sh', ['-c', `command -v ${cmd}`]).ok

// Each: prepare() returns {skip: reason} or {cmd, args, cwd, label}.
const verifiers = [
  {
    name: 'node',
    prepare() {
      let jose
      try {
        jose = JSON.parse(readFileSync(path.join(root, 'node_modules/jose/package.json'), 'utf8')).version
      } catch {
        return { skip: "jose is not installed (run 'npm install' in the repository root)" }
      }
      return { cmd: process.execPath, args: [path.join(origin, 'node/conformance.mjs'), file], label: `node ${process.version}, jose ${jose}` }
    },
  },
  {
    name: 'python',
    prepare() {
      const candidates = [path.join(origin, 'python/.venv/bin/python'), 'python3']
      for (const py of candidates) {
        if (py.includes('/') ? !existsSync(py) : !has(py)) continue
        const probe = run(py, ['-c', 'import sys, jwt, cryptography; print("Python %d.%d.%d, PyJWT %s, cryptography %s" % (sys.version_info[:3] + (jwt.__version__, cryptography.__version__)))'])
        if (probe.ok) return { cmd: py, args: [path.join(origin, 'python/conformance.py'), file], label: probe.stdout.trim() }
      }
      return { skip: 'no Python with PyJWT and cryptography (scripts/bootstrap makes origin/python/.venv)' }
    },
  },
  {
    name: 'go',
    prepare() {
      if (!has('go')) return { skip: "'go' not found (scripts/bootstrap installs Debian's golang-go)" }
      const v = run('go', ['env', 'GOVERSION'])
      return {
        cmd: 'go',
        args: ['run', './cmd/conformance', file],
        cwd: path.join(origin, 'go'),
        env: { ...process.env, GOFLAGS: '-mod=mod', GOPROXY: 'off', GOTOOLCHAIN: 'local' },
        label: `${v.stdout.trim() || 'go'}, standard library`,
      }
    },
  },
  {
    name: 'java',
    prepare() {
      if (!has('javac') || !has('java')) return { skip: "'javac' not found (scripts/bootstrap installs openjdk-17-jdk-headless)" }
      const b = run(path.join(origin, 'java/compile'), [])
      if (!b.ok) return { error: `compiling failed:\n${b.stdout}${b.stderr}` }
      const v = run('java', ['-version'])
      const version = /version "([^"]+)"/.exec(v.stderr)?.[1] ?? '?'
      return { cmd: 'java', args: ['-cp', b.stdout.trim(), 'wxedge.identity.Conformance', file], label: `Java ${version}, JDK only` }
    },
  },
]

// Token cases, then configuration cases (a verifier built with each JWKS URL:
// "valid" means it was accepted).
const expected = new Map([...vectors.cases, ...(vectors.jwks_urls ?? [])].map((c) => [c.name, c]))
const total = expected.size
let passed = 0
let failed = 0
let skipped = 0
let broken = false

for (const v of verifiers) {
  const t0 = Date.now()
  const p = v.prepare()
  if (p.skip) {
    skipped += total
    console.log(`${v.name}: SKIPPED, ${p.skip}`)
    continue
  }
  if (p.error) {
    broken = true
    failed += total
    console.log(`${v.name}: ERROR, ${p.error}`)
    continue
  }
  const r = run(p.cmd, p.args, { cwd: p.cwd ?? root, env: p.env ?? process.env })
  const got = new Map()
  const problems = []
  for (const line of r.stdout.split('\n')) {
    if (!line.trim()) continue
    try {
      const o = JSON.parse(line)
      got.set(o.name, o)
    } catch {
      problems.push(`unparseable output line: ${line}`)
    }
  }
  let ok = 0
  if (got.size === 0) problems.push('no verdicts at all')
  else for (const [name, c] of expected) {
    const g = got.get(name)
    if (!g) problems.push(`"${name}": no verdict`)
    else if (g.valid !== c.valid) problems.push(`"${name}": expected ${c.valid ? 'valid' : 'invalid'}, got ${g.valid ? 'valid' : `invalid (${g.error})`}`)
    else if (c.valid && g.sub !== c.sub) problems.push(`"${name}": expected sub ${c.sub}, got ${g.sub}`)
    else ok++
  }
  if (!r.ok) problems.push(`exited with ${r.status}: ${r.stderr.trim().split('\n').slice(-5).join(' | ')}`)
  passed += ok
  failed += total - ok
  if (!r.ok || got.size === 0) broken = true
  const secs = ((Date.now() - t0) / 1000).toFixed(1)
  console.log(`${v.name} (${p.label}): ${ok}/${total} passed${problems.length ? ', FAILED' : ''} [${secs} s]`)
  for (const m of problems) console.log(`  ${m}`)
}

console.log(`conformance: ${passed} passed, ${failed} failed, ${skipped} skipped`)
if (failed > 0 || broken) process.exit(1)
if (strict && skipped > 0) {
  console.log('conformance: --strict and a verifier was skipped')
  process.exit(1)
}
