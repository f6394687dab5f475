// The benchmark: scripts/bench runs this (after building the worker and
// installing wrk and nginx when missing). Everything runs on this machine,
// on 127.0.0.1: one nginx origin, the WeChat simulator, and one Miniflare
// (one workerd) per target. See "Benchmark" in the README for what it
// measures, and `node bench/run.mjs --help` for the options.
import { existsSync, mkdtempSync, writeFileSync, readFileSync, statSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { gzipSync } from 'node:zlib'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { startWechatSim } from '../tests/support/wechat-sim.mjs'
import { TEST_APPID, buildDir } from '../tests/support/stack.mjs'
import { atCleanup, cleanupAll, installExitHandlers, removeAtCleanup, withTimeout } from './procs.mjs'
import { startOrigin, findNginx, ORIGIN_BODY } from './origin.mjs'
import { wrk, script, findWrk, errorCount } from './wrk.mjs'
import { withCpu } from './cpu.mjs'
import {
  RUST_MODES, BENCH_KEYS, root, wranglerBindings, startMiniflare, rustWorkerOptions, joseOptions,
  passthroughOptions, jsLoginOptions, login, loginMany, rustPassthroughOptions, rustPassthroughBuild,
} from './targets.mjs'

const HELP = `scripts/bench [--no-build] [options]      (or: node bench/run.mjs [options])

  --rounds N          measured rounds; targets alternate within each round (3)
  --duration S        seconds per target per round (10)
  --warmup S          seconds of unrecorded load per target before round 1 (3)
  --connections N     wrk connections (16)
  --threads N         wrk threads (1: leaves the cores to workerd)
  --sessions N        logged-in sessions per Rust target; >= connections (64)
  --cold-starts N     fresh Miniflare starts per worker for start-up latency (5)
  --only IDS          comma-separated subset: origin, passthrough, passthrough-nostore,
                      passthrough-kv, passthrough-rs, jose, ${RUST_MODES.map((m) => m.id).join(', ')},
                      login, login-js, refresh, cold-start, size
  --out FILE          Markdown results (bench/results.md)
  --json FILE         raw results as JSON (bench/results.json)
  --update-readme     also replace the README between <!-- bench:start --> and <!-- bench:end -->
`

const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '3' },
    connections: { type: 'string', default: '16' },
    threads: { type: 'string', default: '1' },
    sessions: { type: 'string', default: '64' },
    'cold-starts': { type: 'string', default: '5' },
    only: { type: 'string' },
    out: { type: 'string', default: path.join(root, 'bench', 'results.md') },
    json: { type: 'string', default: path.join(root, 'bench', 'results.json') },
    'update-readme': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
})
if (opt.help) {
  console.log(HELP)
  process.exit(0)
}
const num = (name, min) => {
  const v = Number(opt[name])
  if (!Number.isInteger(v) || v < min) {
    console.error(`--${name} must be an integer >= ${min}\n\n${HELP}`)
    process.exit(2)
  }
  return v
}
const cfg = {
  rounds: num('rounds', 1),
  duration: num('duration', 1),
  warmup: num('warmup', 0),
  connections: num('connections', 1),
  threads: num('threads', 1),
  sessions: num('sessions', 1),
  coldStarts: num('cold-starts', 0),
}
if (cfg.threads > cfg.connections) cfg.connections = cfg.threads
if (cfg.sessions < cfg.connections) {
  console.error(`--sessions (${cfg.sessions}) must be at least --connections (${cfg.connections}): refresh uses each session by one connection at a time`)
  process.exit(2)
}
const only = opt.only ? new Set(opt.only.split(',').map((s) => s.trim()).filter(Boolean)) : null
if (only && opt['update-readme']) {
  console.error('--update-readme needs the whole benchmark: leave out --only')
  process.exit(2)
}
const wanted = (id) => !only || only.has(id)

const PROXY_PATH = '/api/items?page=1'
const log = (...a) => console.error('[bench]', ...a)
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

async function main() {
  installExitHandlers()
  const wrkBin = findWrk()
  const nginxBin = findNginx()
  if (!wrkBin || !nginxBin) {
    throw new Error(`missing ${[!wrkBin && 'wrk', !nginxBin && 'nginx'].filter(Boolean).join(' and ')}: ` +
      'apt-get install wrk nginx-light (scripts/bench installs them)')
  }
  const started = new Date()
  const loadAtStart = os.loadavg()
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'wx-edge-bench-'))
  removeAtCleanup(tmp)
  const wrangler = await wranglerBindings()
  log(`wrangler.toml: compatibility_date ${wrangler.compatibilityDate}; KV ${wrangler.kvNamespaces.join(', ') || '-'}; ` +
    `Durable Objects ${Object.keys(wrangler.durableObjects).join(', ') || '-'}; rate limits ${Object.keys(wrangler.ratelimits).join(', ') || '-'}`)

  const origin = await startOrigin(tmp)
  log(`origin: nginx at ${origin.url}`)
  const sim = await startWechatSim({ appid: TEST_APPID, secret: BENCH_KEYS.appsecret })
  atCleanup(() => sim.close())
  log(`WeChat simulator at ${sim.url}`)

  const results = { settings: { ...cfg, path: PROXY_PATH, argv: shownArgs() }, size: null, coldStart: null, runs: {} }
  let seq = 0 // makes every login code of the run unique

  // ---- size ----
  if (wanted('size')) results.size = sizes()

  // ---- start-up: a fresh Miniflare each time, then the first login ----
  if (wanted('cold-start') && cfg.coldStarts > 0) {
    // The workers with a login measure two logins; the pass-throughs (the
    // floors) two proxied GETs, so a first request's cost can be split
    // into what any worker of that kind pays and what the work adds.
    const originUrl = origin.url
    const kinds = {
      rust: { options: () => rustWorkerOptions({ wrangler, simUrl: sim.url, originUrl, mode: RUST_MODES[0] }), request: (url) => login(url, `csrust${++seq}.1`) },
      js: { options: () => jsLoginOptions({ wrangler, simUrl: sim.url }), request: (url) => login(url, `csjs${++seq}.1`) },
      'rust-floor': { options: () => rustPassthroughOptions({ wrangler, originUrl }), request: proxiedGet },
      'js-floor': { options: () => passthroughOptions({ wrangler, originUrl }), request: proxiedGet },
    }
    const samples = Object.fromEntries(Object.keys(kinds).map((k) => [k, []]))
    for (let i = 0; i < cfg.coldStarts; i++) {
      for (const [kind, { options, request }] of Object.entries(kinds)) {
        const t0 = performance.now()
        const w = await startMiniflare(`cold-${kind}`, options())
        const t1 = performance.now()
        await request(w.url)
        const t2 = performance.now()
        await request(w.url)
        const t3 = performance.now()
        await w.stop()
        samples[kind].push({ ready: t1 - t0, first: t2 - t1, second: t3 - t2 })
      }
    }
    results.coldStart = Object.fromEntries(Object.entries(samples).map(([k, s]) => [k, {
      samples: s,
      ready: median(s.map((x) => x.ready)),
      first: median(s.map((x) => x.first)),
      second: median(s.map((x) => x.second)),
    }]))
    log(`start-up measured (${cfg.coldStarts}× each)`)
  }

  // ---- the targets ----
  const benches = []
  const needDefault = wanted('login') || wanted('refresh') || wanted('jose')
  const rustModes = RUST_MODES.filter((m, i) => wanted(m.id) || (i === 0 && needDefault))
  const rust = {}
  for (const mode of rustModes) {
    rust[mode.id] = await startMiniflare(mode.id, rustWorkerOptions({ wrangler, simUrl: sim.url, originUrl: origin.url, mode }))
    const tokens = (await loginMany(rust[mode.id].url, `px${mode.id.replace(/\W/g, '')}`, cfg.sessions)).map((t) => t.access_token)
    rust[mode.id].tokenFile = path.join(tmp, `tokens-${mode.id}.txt`)
    writeFileSync(rust[mode.id].tokenFile, tokens.join('\n') + '\n')
    log(`${mode.id}: ${rust[mode.id].url}, ${cfg.sessions} sessions logged in`)
  }
  const anyTokens = Object.values(rust)[0]?.tokenFile ?? writeDummyTokens(tmp)
  const bearer = script(tmp, 'bearer')

  const proxyBench = (id, label, url, tokenFile, expect) => ({
    id, group: 'proxy', label, url: url + PROXY_PATH, expect, tokenFile,
    prepare: () => ({ script: bearer, args: [tokenFile] }),
  })
  if (wanted('origin')) benches.push(proxyBench('origin', 'nginx origin directly (the ceiling)', origin.url, anyTokens, null))
  if (wanted('passthrough')) {
    const w = await startMiniflare('passthrough', passthroughOptions({ wrangler, originUrl: origin.url }))
    benches.push(proxyBench('passthrough', 'JS pass-through worker (the baseline)', w.url, anyTokens, { openid: 'no', identity: 'no' }))
    log(`passthrough: ${w.url}`)
  }
  if (wanted('passthrough-nostore')) {
    const w = await startMiniflare('passthrough-nostore', passthroughOptions({ wrangler, originUrl: origin.url, noStore: true }))
    benches.push(proxyBench('passthrough-nostore', "JS pass-through with `cache: 'no-store'` (the contract's fetch)", w.url, anyTokens, { openid: 'no', identity: 'no' }))
    log(`passthrough-nostore: ${w.url}`)
  }
  if (wanted('passthrough-kv')) {
    const w = await startMiniflare('passthrough-kv', passthroughOptions({ wrangler, originUrl: origin.url, noStore: true, kvRead: true }))
    benches.push(proxyBench('passthrough-kv', "JS pass-through with `cache: 'no-store'` and one KV read (what `every-request` adds)", w.url, anyTokens, { openid: 'no', identity: 'no' }))
    log(`passthrough-kv: ${w.url}`)
  }
  if (wanted('passthrough-rs')) {
    const w = await startMiniflare('passthrough-rs', rustPassthroughOptions({ wrangler, originUrl: origin.url }))
    benches.push(proxyBench('passthrough-rs', 'Rust pass-through (workers-rs, nothing else: the floor)', w.url, anyTokens, { openid: 'no', identity: 'no' }))
    log(`passthrough-rs: ${w.url}`)
  }
  if (wanted('jose')) {
    // The same sessions as the default Rust target: its tokens, and its
    // replicas copied into this worker's KV.
    const def = rust[RUST_MODES[0].id]
    const w = await startMiniflare('js-jose', await joseOptions({ wrangler, originUrl: origin.url, tmpDir: tmp }))
    const from = await def.mf.getKVNamespace('SESSIONS')
    const to = await w.mf.getKVNamespace('SESSIONS')
    for (const t of readFileSync(def.tokenFile, 'utf8').split('\n').filter(Boolean)) {
      const { sid } = JSON.parse(Buffer.from(t.split('.')[1], 'base64url').toString())
      const replica = await from.get(`session:${sid}`)
      if (replica == null) throw new Error(`jose: no replica for a session of ${RUST_MODES[0].id}`)
      await to.put(`session:${sid}`, replica)
    }
    benches.push(proxyBench('jose', 'JS reference with `jose`: verify, KV read, Ed25519 assertion on every request (issue 20)', w.url, def.tokenFile, { openid: 'yes', identity: 'yes' }))
    log(`js-jose: ${w.url}`)
  }
  for (const mode of RUST_MODES.filter((m) => wanted(m.id))) {
    benches.push(proxyBench(mode.id, mode.label, rust[mode.id].url, rust[mode.id].tokenFile, { openid: 'yes', identity: mode.identity ? 'yes' : 'no' }))
  }
  const def = rust[RUST_MODES[0].id]
  if (wanted('login')) {
    const s = script(tmp, 'login')
    benches.push({ id: 'login', group: 'auth', label: 'login, Rust (default configuration)', url: def.url, prepare: () => ({ script: s, args: [`lg${++seq}x`] }) })
  }
  if (wanted('login-js')) {
    const w = await startMiniflare('js-login', jsLoginOptions({ wrangler, simUrl: sim.url }))
    await login(w.url, `jscheck${++seq}.1`)
    const s = script(tmp, 'login')
    benches.push({ id: 'login-js', group: 'auth', label: 'login, JS reference worker', url: w.url, prepare: () => ({ script: s, args: [`lj${++seq}x`] }) })
    log(`js-login: ${w.url}`)
  }
  if (wanted('refresh')) {
    const s = script(tmp, 'refresh')
    benches.push({
      id: 'refresh', group: 'auth', label: 'refresh, Rust (rotates a live session)', url: def.url,
      // A fresh pool of sessions for each run: a run ends with requests in
      // flight, whose rotations the pool no longer knows.
      prepare: async () => {
        const file = path.join(tmp, `refresh-${++seq}.txt`)
        const pairs = await loginMany(def.url, `rf${seq}x`, cfg.sessions)
        writeFileSync(file, pairs.map((p) => p.refresh_token).join('\n') + '\n')
        return { script: s, args: [file, String(cfg.threads)] }
      },
    })
  }

  // Every proxy target must answer 200 with the origin's body, and pass on
  // exactly the identity headers it should.
  for (const b of benches.filter((x) => x.group === 'proxy')) await sanityCheck(b)

  // ---- load: warm-up, then rounds alternating the targets ----
  const runOnce = async (b, seconds) => {
    const { script: s, args } = await b.prepare()
    return withCpu(b.url, () => wrk({ url: b.url, script: s, args, seconds, threads: cfg.threads, connections: cfg.connections }))
  }
  if (cfg.warmup > 0) {
    for (const b of benches) {
      log(`warm-up ${b.id} (${cfg.warmup} s)`)
      await runOnce(b, cfg.warmup)
    }
  }
  for (const b of benches) results.runs[b.id] = { id: b.id, group: b.group, label: b.label, rounds: [] }
  for (let r = 0; r < cfg.rounds; r++) {
    // Each round starts at a different target, so none always runs first.
    const order = benches.map((_, i) => benches[(i + r) % benches.length])
    for (const b of order) {
      const res = await runOnce(b, cfg.duration)
      results.runs[b.id].rounds.push(res)
      const errs = errorCount(res.errors)
      log(`round ${r + 1}/${cfg.rounds} ${b.id.padEnd(18)} ${fmtInt(res.rps).padStart(7)} req/s  ${fmtCpu(res.cpuUs).padStart(7)} CPU/req  p50 ${fmtMs(res.p50)}  p99 ${fmtMs(res.p99)}${errs ? `  ${errs} ERRORS ${JSON.stringify(res.errors)}` : ''}`)
      if (errs > res.requests * 0.01) log(`more than 1% errors; the worker's recent log:\n${Object.values(rust).find((w) => b.url.startsWith(w.url))?.logs() ?? '(no log kept)'}`)
    }
  }
  const baseline = results.runs.passthrough
  for (const run of Object.values(results.runs)) {
    run.rps = median(run.rounds.map((x) => x.rps))
    // Against the pass-through of the same round, so slow drifts of the
    // machine's load cancel out.
    run.ratio = baseline && run.group === 'proxy' && run.id !== 'origin'
      ? median(run.rounds.map((x, i) => x.rps / baseline.rounds[i].rps))
      : null
    const cpu = run.rounds.map((x) => x.cpuUs).filter((x) => x != null)
    run.cpuUs = cpu.length ? median(cpu) : null
    run.p50 = median(run.rounds.map((x) => x.p50))
    run.p99 = median(run.rounds.map((x) => x.p99))
    run.errors = run.rounds.reduce((n, x) => n + errorCount(x.errors), 0)
  }

  const meta = describeMachine(started, loadAtStart)
  results.meta = meta
  const md = markdown(results, meta)
  writeFileSync(opt.out, md)
  writeFileSync(opt.json, JSON.stringify(results, null, 2) + '\n')
  if (opt['update-readme']) updateReadme(md)
  console.log(md)
  log(`wrote ${opt.out} and ${opt.json}${opt['update-readme'] ? ' and the README table' : ''}`)
}

/** The command-line options that shape the numbers (not where they are written). */
function shownArgs() {
  const out = []
  const args = process.argv.slice(2)
  for (let i = 0; i < args.length; i++) {
    if (/^--(out|json)$/.test(args[i])) i++
    else if (!/^--(out|json)=|^--update-readme$/.test(args[i])) out.push(args[i])
  }
  return out
}

function writeDummyTokens(tmp) {
  const f = path.join(tmp, 'tokens-dummy.txt')
  writeFileSync(f, 'no-rust-target-in-this-run\n')
  return f
}

/** One proxied GET through a pass-through; its body must be the origin's. */
async function proxiedGet(url) {
  const res = await fetch(url + PROXY_PATH, { signal: AbortSignal.timeout(15000) })
  const body = await res.text()
  if (res.status !== 200 || body !== ORIGIN_BODY) throw new Error(`${url}: expected the origin's 200, got ${res.status}`)
}

async function sanityCheck(b) {
  const token = readFileSync(b.tokenFile, 'utf8').split('\n')[0]
  const res = await fetch(b.url, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(15000) })
  const body = await res.text()
  const saw = { openid: res.headers.get('x-origin-saw-openid'), identity: res.headers.get('x-origin-saw-identity') }
  if (res.status !== 200 || body !== ORIGIN_BODY) throw new Error(`${b.id}: expected the origin's 200, got ${res.status} ${body.slice(0, 300)}`)
  if (b.expect && (saw.openid !== b.expect.openid || saw.identity !== b.expect.identity)) {
    throw new Error(`${b.id}: the origin saw X-WX-OpenID ${saw.openid}, X-WX-Identity ${saw.identity}; expected ${b.expect.openid}, ${b.expect.identity}`)
  }
}

// Sizes as `gzip -9 -c FILE | wc -c` reports them (GNU gzip compresses a
// little better than zlib at level 9; zlib is the fallback without gzip).
function gzipSize(buf) {
  const r = spawnSync('gzip', ['-9', '-c'], { input: buf, maxBuffer: 1 << 28 })
  return r.status === 0 ? r.stdout.length : gzipSync(buf, { level: 9 }).length
}

function sizes() {
  const file = (p) => {
    const buf = readFileSync(p)
    return { raw: buf.length, gzip9: gzipSize(buf) }
  }
  const wasm = file(path.join(buildDir, 'index_bg.wasm'))
  const glue = file(path.join(buildDir, 'index.js'))
  const jsRef = file(path.join(root, 'bench', 'workers', 'js-login.mjs'))
  const jsPass = file(path.join(root, 'bench', 'workers', 'passthrough.mjs'))
  let floor = null
  if (existsSync(path.join(rustPassthroughBuild, 'index_bg.wasm'))) {
    const w = file(path.join(rustPassthroughBuild, 'index_bg.wasm'))
    const g = file(path.join(rustPassthroughBuild, 'index.js'))
    floor = { wasm: w, glue: g, total: { raw: w.raw + g.raw, gzip9: w.gzip9 + g.gzip9 } }
  }
  return {
    wasm,
    glue,
    total: { raw: wasm.raw + glue.raw, gzip9: wasm.gzip9 + glue.gzip9 },
    jsRef,
    jsPass,
    floor,
    builtAt: statSync(path.join(buildDir, 'index_bg.wasm')).mtime.toISOString(),
  }
}

function describeMachine(started, load) {
  // stdout and stderr together: `nginx -v` and `wrk -v` print to stderr or exit non-zero.
  const sh = (cmd, args) => {
    const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10000 })
    return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim()
  }
  const pkg = (p) => JSON.parse(readFileSync(path.join(root, 'node_modules', p, 'package.json'), 'utf8')).version
  const commit = sh('git', ['-C', root, 'rev-parse', '--short', 'HEAD'])
  const dirty = sh('git', ['-C', root, 'status', '--porcelain', '--untracked-files=no', '--', 'src', 'Cargo.toml', 'Cargo.lock']) !== ''
  return {
    date: started.toISOString().slice(0, 16).replace('T', ' ') + ' UTC',
    cpu: os.cpus()[0]?.model?.replace(/\s+/g, ' ').trim() ?? 'unknown CPU',
    cores: os.cpus().length,
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    load: load.map((x) => x.toFixed(2)).join(' '),
    loadAtEnd: os.loadavg().map((x) => x.toFixed(2)).join(' '),
    commit: commit + (dirty ? ' (with uncommitted changes in src/)' : ''),
    wrk: sh(findWrk(), ['-v']).split('\n')[0].split(' ').slice(0, 2).join(' '),
    nginx: sh(findNginx(), ['-v']).replace(/^nginx version: (nginx\/)?/, ''),
    miniflare: pkg('miniflare'),
    workerd: pkg('workerd'),
    node: process.version,
  }
}

// ---- Markdown ----

const fmtInt = (x) => Math.round(x).toLocaleString('en-US')
const fmtMs = (x) => (x == null ? '–' : x < 10 ? `${x.toFixed(2)} ms` : x < 100 ? `${x.toFixed(1)} ms` : `${Math.round(x)} ms`)
const fmtCpu = (us) => (us == null ? '–' : us < 1000 ? `${Math.round(us)} µs` : `${(us / 1000).toFixed(2)} ms`)
const fmtBytes = (b) => (b >= 1e6 ? `${(b / 1e6).toFixed(2)} MB` : `${(b / 1e3).toFixed(1)} KB`)

function markdown(results, meta) {
  const c = results.settings
  const out = []
  out.push(`Measured by \`scripts/bench${c.argv.length ? ' ' + c.argv.join(' ') : ''}\` on ${meta.date}: ${meta.cpu}, ${meta.cores} cores, ${meta.memGiB} GiB; ` +
    `load average ${meta.load} at the start, ${meta.loadAtEnd} at the end; commit ${meta.commit}; ${meta.wrk}, nginx ${meta.nginx}, Miniflare ${meta.miniflare} (workerd ${meta.workerd}), Node ${meta.node}. ` +
    `Load generator, workers, origin and simulator share the machine, so compare rows with each other, not with Cloudflare's edge.`)
  out.push('')
  const runs = Object.values(results.runs)
  const proxy = runs.filter((r) => r.group === 'proxy')
  const perRound = (r) => r.rounds.map((x) => fmtInt(x.rps)).join(', ')
  if (proxy.length) {
    out.push(`Proxied \`GET ${c.path}\` with a valid Bearer token (cycling over ${c.sessions} sessions) to a static nginx origin; ` +
      `wrk ${c.threads} thread${c.threads > 1 ? 's' : ''} × ${c.connections} connections; ${c.rounds} round${c.rounds > 1 ? 's' : ''} of ${c.duration} s per target, alternating, after a ${c.warmup} s warm-up; each number is the median over the rounds ` +
      '(the ratio: of the per-round ratios to the pass-through). CPU per request: the CPU time (user + system) of the processes serving the target ' +
      '(its workerd, which runs its KV and Durable Objects too; nginx for the origin) during a run, divided by the requests answered ' +
      '(`bench/cpu.mjs`: the measure of `bench/profile.mjs`, without the profiler):')
    out.push('')
    out.push('| target | req/s | vs pass-through | CPU per request | p50 | p99 | req/s per round | errors |')
    out.push('| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |')
    for (const r of proxy) {
      const ratio = r.ratio == null ? '–' : `${r.ratio.toFixed(2)}×`
      out.push(`| ${r.label} | ${fmtInt(r.rps)} | ${ratio} | ${fmtCpu(r.cpuUs)} | ${fmtMs(r.p50)} | ${fmtMs(r.p99)} | ${perRound(r)} | ${r.errors} |`)
    }
    out.push('')
  }
  const auth = runs.filter((r) => r.group === 'auth')
  if (auth.length) {
    out.push('Auth endpoints, same load settings. Each login is a new user whose code2Session goes to the WeChat simulator (Node, in the benchmark process); ' +
      `each refresh rotates one of ${c.sessions} live sessions and hands the new token to the next request of that session (CPU per request: the worker's workerd only, not the simulator):`)
    out.push('')
    out.push('| request | req/s | CPU per request | p50 | p99 | req/s per round | errors |')
    out.push('| --- | ---: | ---: | ---: | ---: | --- | ---: |')
    for (const r of auth) out.push(`| ${r.label} | ${fmtInt(r.rps)} | ${fmtCpu(r.cpuUs)} | ${fmtMs(r.p50)} | ${fmtMs(r.p99)} | ${perRound(r)} | ${r.errors} |`)
    out.push('')
  }
  if (results.size || results.coldStart) {
    out.push(results.coldStart
      ? `Size and start-up (start-up: a fresh Miniflare each time, the median of ${c.coldStarts}; ` +
        '"first request" is the first request after Miniflare is ready: a login for the Rust worker and the JS reference, ' +
        'a proxied GET for the pass-throughs; "start until ready" includes loading the worker):'
      : 'Size:')
    out.push('')
    out.push('| | Rust worker | JS reference worker | Rust pass-through (the floor) | JS pass-through |')
    out.push('| --- | ---: | ---: | ---: | ---: |')
    const s = results.size
    const both = (x) => `${fmtBytes(x.raw)} / ${fmtBytes(x.gzip9)}`
    if (s) {
      const f = s.floor
      out.push(`| wasm, raw / gzip -9 | ${both(s.wasm)} | – | ${f ? both(f.wasm) : '–'} | – |`)
      out.push(`| JavaScript, raw / gzip -9 | ${both(s.glue)} (\`build/index.js\`) | ${both(s.jsRef)} (unminified) | ${f ? both(f.glue) : '–'} | ${both(s.jsPass)} |`)
      out.push(`| bundle total, raw / gzip -9 | ${both(s.total)} | ${both(s.jsRef)} | ${f ? both(f.total) : '–'} | ${both(s.jsPass)} |`)
    }
    const cs = results.coldStart
    if (cs) {
      const row = (name, key) => out.push(`| ${name} | ${['rust', 'js', 'rust-floor', 'js-floor'].map((k) => (cs[k] ? fmtMs(cs[k][key]) : '–')).join(' | ')} |`)
      row('Miniflare start until ready', 'ready')
      row('first request (login; GET for the pass-throughs)', 'first')
      row('second request (warm)', 'second')
    }
    out.push('')
  }
  return out.map((line) => (line.startsWith('|') ? line : wrap(line))).join('\n')
}

/** Wraps prose at 76 columns like the rest of the README (tables stay as they are). */
function wrap(text, width = 76) {
  const lines = []
  let line = ''
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line)
      line = word
    } else {
      line = line ? `${line} ${word}` : word
    }
  }
  if (line) lines.push(line)
  return lines.join('\n')
}

function updateReadme(md) {
  const file = path.join(root, 'README.md')
  const text = readFileSync(file, 'utf8')
  const start = '<!-- bench:start -->'
  const end = '<!-- bench:end -->'
  const i = text.indexOf(start)
  const j = text.indexOf(end)
  if (i < 0 || j < i) throw new Error(`README.md has no ${start} … ${end} block`)
  writeFileSync(file, `${text.slice(0, i + start.length)}\n${md}\n${text.slice(j)}`)
}

try {
  await main()
  await cleanupAll()
} catch (e) {
  console.error(`[bench] ${e.stack ?? e}`)
  await cleanupAll()
  process.exitCode = 1
}
