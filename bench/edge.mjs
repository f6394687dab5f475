// A quick, Node-only look at the worker's throughput and latency in workerd
// (Miniflare directly, no wrangler dev proxy in front), against the local
// simulator and echo origin, with a load loop in this process. The real
// benchmark is scripts/bench (wrk, an nginx origin, a JS pass-through
// baseline, rounds); see "Benchmark" in the README.
//
//   PATH=node_modules/.bin:$PATH node bench/edge.mjs [requests=2000] [concurrency=16]
//
// Measures: logins (code2Session round trip + 2 KV writes), proxied GETs
// with SESSION_CHECK=every-request (one KV read each) and refresh-only, and
// refreshes. Numbers depend on the machine; the README lists one run.
import { startStack, login } from '../tests/support/stack.mjs'

const total = Number(process.argv[2] ?? 2000)
const concurrency = Number(process.argv[3] ?? 16)

async function run(name, n, makeRequest) {
  const latencies = []
  let next = 0
  let failures = 0
  const started = performance.now()
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) {
      const i = next++
      const t0 = performance.now()
      const res = await makeRequest(i)
      await res.arrayBuffer()
      if (res.status >= 400) failures++
      latencies.push(performance.now() - t0)
    }
  }))
  const secs = (performance.now() - started) / 1000
  latencies.sort((a, b) => a - b)
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))].toFixed(1)
  console.log(`${name.padEnd(34)} ${String(Math.round(n / secs)).padStart(6)} req/s  p50 ${pct(0.5)} ms  p99 ${pct(0.99)} ms  (${n} requests, ${concurrency} at a time${failures ? `, ${failures} FAILED` : ''})`)
}

for (const mode of ['every-request', 'refresh-only']) {
  const stack = await startStack({ vars: { SESSION_CHECK: mode } })
  try {
    const t = await login(stack, `bench${mode}.0`)
    const auth = { authorization: `Bearer ${t.access_token}` }
    // Warm-up: JIT, isolate, connection pool.
    await run(`warm-up (${mode})`, 200, () => fetch(`${stack.url}/api/x`, { headers: auth }))
    await run(`proxy GET (${mode})`, total, () => fetch(`${stack.url}/api/items?page=1`, { headers: auth }))
    if (mode === 'every-request') {
      await run('login (code2Session + KV)', Math.min(total, 1000), (i) =>
        fetch(`${stack.url}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code: `u${i}.1` }) }))
      const tokens = []
      for (let i = 0; i < Math.min(total, 500); i++) tokens.push((await login(stack, `r${i}.1`)).refresh_token)
      await run('refresh (rotation)', tokens.length, (i) =>
        fetch(`${stack.url}/auth/refresh`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refresh_token: tokens[i] }) }))
      await run('echo origin direct (baseline)', total, () => fetch(`${stack.origin.url}/api/items?page=1`))
    }
  } finally {
    await stack.close()
  }
}
