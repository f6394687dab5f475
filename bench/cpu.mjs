// Server-side CPU time per request, the measure of bench/profile.mjs
// without the profiler: the CPU seconds (user + system, from /proc) of the
// processes that serve a URL — those holding its listening socket: one
// workerd per Miniflare (its KV and Durable Objects run in it too), nginx's
// master and workers for the origin — over a load run, divided by the
// requests wrk completed. Linux only; elsewhere it reports nothing.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'

const USER_HZ = 100

/** The socket inodes listening on 127.0.0.1/0.0.0.0/:: `port`. */
function listeningInodes(port) {
  const out = new Set()
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text
    try {
      text = readFileSync(file, 'utf8')
    } catch {
      continue
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/)
      if (f.length < 10 || f[3] !== '0A') continue // LISTEN
      if (parseInt(f[1].split(':')[1], 16) === port) out.add(f[9])
    }
  }
  return out
}

/** The pids holding a listening socket on `url`'s port (empty if unknown). */
export function serverPids(url) {
  const port = Number(new URL(url).port)
  const inodes = listeningInodes(port)
  const pids = []
  if (!inodes.size) return pids
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let fds
    try {
      fds = readdirSync(`/proc/${pid}/fd`)
    } catch {
      continue
    }
    for (const fd of fds) {
      let link
      try {
        link = readlinkSync(`/proc/${pid}/fd/${fd}`)
      } catch {
        continue
      }
      const m = /^socket:\[(\d+)\]$/.exec(link)
      if (m && inodes.has(m[1])) {
        pids.push(pid)
        break
      }
    }
  }
  return pids
}

/** CPU seconds used so far by `pids` (those still running). */
export function cpuSeconds(pids) {
  let total = 0
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      total += (Number(f[11]) + Number(f[12])) / USER_HZ
    } catch {}
  }
  return total
}

/**
 * Runs `load()` (which resolves to wrk's result, with `requests`) and adds
 * `cpuUs`: the servers' CPU microseconds per request, or null when their
 * processes cannot be found.
 */
export async function withCpu(url, load) {
  const pids = serverPids(url)
  const c0 = cpuSeconds(pids)
  const res = await load()
  const used = cpuSeconds(pids) - c0
  return { ...res, cpuUs: pids.length && res.requests ? (used * 1e6) / res.requests : null }
}
