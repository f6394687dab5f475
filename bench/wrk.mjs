// Runs wrk with one of the Lua scripts in bench/lua (each gets common.lua
// appended) and returns its numbers.
import { readFileSync, writeFileSync, existsSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { run } from './procs.mjs'

const luaDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'lua')

export function findWrk() {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(path.join(dir, 'wrk'))) return path.join(dir, 'wrk')
  }
  return null
}

/** Writes <name>.lua + common.lua into tmpDir; returns the path. */
export function script(tmpDir, name) {
  const out = path.join(tmpDir, `${name}.lua`)
  writeFileSync(out, readFileSync(path.join(luaDir, `${name}.lua`), 'utf8') + '\n' + readFileSync(path.join(luaDir, 'common.lua'), 'utf8'))
  return out
}

/**
 * One wrk run. Returns { rps, requests, seconds, p50, p90, p99, max (ms),
 * errors: {status, connect, read, write, timeout} }.
 */
export async function wrk({ url, script: scriptPath, args = [], seconds, threads, connections, timeout = 5 }) {
  const { exited } = run(findWrk() ?? 'wrk', [
    '-t', String(threads), '-c', String(connections), '-d', `${seconds}s`,
    '--timeout', `${timeout}s`, '--latency', '-s', scriptPath, url, '--', ...args,
  ], { timeoutMs: (seconds + timeout + 30) * 1000 })
  const { code, signal, stdout, stderr } = await exited
  const line = stdout.split('\n').find((l) => l.startsWith('WRKJSON '))
  if (code !== 0 || !line) {
    throw new Error(`wrk failed (exit ${code ?? signal}) for ${url}:\n${stdout}\n${stderr}`.trim())
  }
  const r = JSON.parse(line.slice('WRKJSON '.length))
  const secs = r.duration_us / 1e6
  return {
    rps: r.requests / secs,
    requests: r.requests,
    seconds: secs,
    p50: r.p50_us / 1000,
    p90: r.p90_us / 1000,
    p99: r.p99_us / 1000,
    max: r.max_us / 1000,
    errors: { status: r.status, connect: r.connect, read: r.read, write: r.write, timeout: r.timeout },
  }
}

export const errorCount = (e) => e.status + e.connect + e.read + e.write + e.timeout
