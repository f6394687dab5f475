// Where a proxied request's CPU time goes inside workerd: runs one target
// under wrk (as scripts/bench does) with V8's sampling profiler on through
// Miniflare's inspector, then prints the functions with the most self time
// and writes the whole profile (open it in Chrome DevTools' Performance
// panel). Function names inside the wasm appear only when the build keeps
// them: build with `WX_EDGE_NAMES=1 WX_EDGE_FORCE_BUILD=1 scripts/build`
// first (and rebuild without it afterwards).
//
//   node bench/profile.mjs [TARGET] [SECONDS]
//   TARGET: passthrough, or a Rust mode: every-request, refresh-only, ...
import { mkdtempSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { startWechatSim } from '../tests/support/wechat-sim.mjs'
import { TEST_APPID } from '../tests/support/stack.mjs'
import { atCleanup, cleanupAll, installExitHandlers, removeAtCleanup } from './procs.mjs'
import { startOrigin } from './origin.mjs'
import { wrk, script } from './wrk.mjs'
import { cpuSeconds, serverPids } from './cpu.mjs'
import {
  BENCH_KEYS,
  RUST_MODES,
  loginMany,
  passthroughOptions,
  rustWorkerOptions,
  startMiniflare,
  wranglerBindings,
} from './targets.mjs'

const target = process.argv[2] ?? 'refresh-only'
const seconds = Number(process.argv[3] ?? 8)
const INSPECTOR_PORT = 9329
const log = (...a) => console.error('[profile]', ...a)

/** A minimal DevTools-protocol client over the inspector's WebSocket. */
async function inspector(port) {
  const list = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()
  const entry = list.find((t) => t.webSocketDebuggerUrl) ?? list[0]
  if (!entry) throw new Error('the inspector lists no target')
  const ws = new WebSocket(entry.webSocketDebuggerUrl.replace('localhost', '127.0.0.1'))
  await new Promise((resolve, reject) => {
    ws.onopen = resolve
    ws.onerror = reject
  })
  let id = 0
  const waiting = new Map()
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data)
    if (msg.id && waiting.has(msg.id)) {
      const { resolve, reject } = waiting.get(msg.id)
      waiting.delete(msg.id)
      if (msg.error) reject(new Error(JSON.stringify(msg.error)))
      else resolve(msg.result)
    }
  }
  return {
    name: entry.title ?? entry.id,
    send: (method, params = {}) =>
      new Promise((resolve, reject) => {
        const n = ++id
        waiting.set(n, { resolve, reject })
        ws.send(JSON.stringify({ id: n, method, params }))
      }),
    close: () => ws.close(),
  }
}

/** Self time per function, from a V8 CPU profile. */
function selfTimes(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const hits = new Map()
  for (const s of profile.samples) hits.set(s, (hits.get(s) ?? 0) + 1)
  const total = profile.samples.length
  const agg = new Map()
  for (const [nodeId, n] of hits) {
    const f = byId.get(nodeId).callFrame
    const name = `${f.functionName || '(anonymous)'} ${f.url ? path.basename(f.url) + ':' + f.lineNumber : ''}`.trim()
    agg.set(name, (agg.get(name) ?? 0) + n)
  }
  return { total, rows: [...agg].sort((a, b) => b[1] - a[1]) }
}

async function main() {
  installExitHandlers()
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'wx-edge-profile-'))
  removeAtCleanup(tmp)
  const wrangler = await wranglerBindings()
  const origin = await startOrigin(tmp)
  const sim = await startWechatSim({ appid: TEST_APPID, secret: BENCH_KEYS.appsecret })
  atCleanup(() => sim.close())
  let options
  if (target === 'passthrough') {
    options = passthroughOptions({ wrangler, originUrl: origin.url })
  } else {
    const mode = RUST_MODES.find((m) => m.id === target)
    if (!mode) throw new Error(`unknown target ${target}`)
    options = rustWorkerOptions({ wrangler, simUrl: sim.url, originUrl: origin.url, mode })
  }
  const w = await startMiniflare(target, { ...options, inspectorPort: INSPECTOR_PORT })
  const sessions = target === 'passthrough' ? [] : await loginMany(w.url, 'prof', 64)
  const tokens = path.join(tmp, 'tokens.txt')
  writeFileSync(tokens, (sessions.length ? sessions.map((s) => s.access_token) : ['x']).join('\n') + '\n')
  const run = (s) => wrk({ url: w.url + '/api/items?page=1', script: script(tmp, 'bearer'), args: [tokens], seconds: s, threads: 1, connections: 16 })
  await run(2) // warm-up
  const ins = await inspector(INSPECTOR_PORT)
  log(`inspector: ${ins.name}`)
  await ins.send('Profiler.enable')
  await ins.send('Profiler.setSamplingInterval', { interval: 100 })
  // This target's workerd only (scripts/bench reports the same measure,
  // without the profiler, for every row).
  const pids = serverPids(w.url)
  const cpu0 = cpuSeconds(pids)
  await ins.send('Profiler.start')
  const r = await run(seconds)
  const { profile } = await ins.send('Profiler.stop')
  const used = cpuSeconds(pids) - cpu0
  console.log(`workerd CPU: ${used.toFixed(2)} s, ${Math.round((used * 1e6) / r.requests)} µs per request (profiler on)`)
  ins.close()
  const out = path.join(os.tmpdir(), `wx-edge-${target}.cpuprofile`)
  writeFileSync(out, JSON.stringify(profile))
  const { total, rows } = selfTimes(profile)
  console.log(`${target}: ${Math.round(r.rps)} req/s over ${seconds} s; ${total} samples; profile in ${out}`)
  for (const [name, n] of rows.slice(0, 40)) console.log(`${((100 * n) / total).toFixed(1).padStart(5)} %  ${name}`)
  await w.stop()
}

main()
  .catch((e) => {
    console.error(e)
    process.exitCode = 1
  })
  .finally(() => cleanupAll())
