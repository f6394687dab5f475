// Everything the benchmark starts is registered here and stopped at the
// end, on an error, on Ctrl-C or SIGTERM: Miniflare instances (each owns
// one workerd), nginx, wrk, the simulator, temp directories.
import { spawn } from 'node:child_process'
import { rmSync } from 'node:fs'
import net from 'node:net'

const cleanups = []
const children = new Set()
const tempDirs = new Set()

/** Runs `fn` at cleanup (last registered, first run). Returns an unregister function. */
export function atCleanup(fn) {
  cleanups.push(fn)
  return () => {
    const i = cleanups.indexOf(fn)
    if (i >= 0) cleanups.splice(i, 1)
  }
}

/** Stops everything still registered; each step is bounded in time. */
export async function cleanupAll() {
  while (cleanups.length) {
    const fn = cleanups.pop()
    try {
      await withTimeout(Promise.resolve().then(fn), 15000, 'cleanup step')
    } catch (e) {
      console.error(`[bench] cleanup: ${e.message}`)
    }
  }
  for (const child of children) child.kill('SIGKILL')
}

export function withTimeout(promise, ms, what) {
  let timer
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms)
    }),
  ]).finally(() => clearTimeout(timer))
}

/** Ctrl-C, SIGTERM and unexpected errors stop everything before exiting. */
export function installExitHandlers() {
  let stopping = false
  const stop = async (code, why) => {
    if (stopping) return
    stopping = true
    if (why) console.error(`\n[bench] ${why}: stopping everything it started`)
    await cleanupAll()
    process.exit(code)
  }
  process.on('SIGINT', () => stop(130, 'interrupted'))
  process.on('SIGTERM', () => stop(143, 'terminated'))
  process.on('SIGHUP', () => stop(129, 'hung up'))
  process.on('uncaughtException', (e) => { console.error(e); stop(1, 'error') })
  process.on('unhandledRejection', (e) => { console.error(e); stop(1, 'error') })
  // Last resort when the process exits before cleanupAll is done: on Ctrl-C
  // Miniflare's own exit hook stops its workerd and calls process.exit().
  // Only synchronous work is possible here.
  process.on('exit', () => {
    for (const child of children) child.kill('SIGKILL')
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true })
  })
}

/**
 * Spawns a process that is killed at cleanup if still running. Resolves
 * `exited` with {code, signal, stdout, stderr}. `timeoutMs` kills it
 * (SIGTERM, then SIGKILL 3 s later) if it runs too long.
 */
export function run(cmd, args, { timeoutMs, cwd, env } = {}) {
  const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
  children.add(child)
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => { stdout += d })
  child.stderr.on('data', (d) => { stderr = (stderr + d).slice(-20000) })
  let timer
  if (timeoutMs) {
    timer = setTimeout(() => {
      stderr += `\n[bench] ${cmd} still running after ${timeoutMs} ms: killed`
      stopChild(child)
    }, timeoutMs)
  }
  const exited = new Promise((resolve) => {
    child.on('error', (e) => { stderr += `\n${e.message}` })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      children.delete(child)
      resolve({ code, signal, stdout, stderr })
    })
  })
  return { child, exited }
}

/** SIGTERM, then SIGKILL if it has not exited within 3 s. */
export function stopChild(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 3000)
    child.once('close', () => {
      clearTimeout(kill)
      resolve()
    })
    child.kill('SIGTERM')
  })
}

/** A port that was free on 127.0.0.1 a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

export function removeAtCleanup(dir) {
  tempDirs.add(dir)
  atCleanup(() => {
    rmSync(dir, { recursive: true, force: true })
    tempDirs.delete(dir)
  })
}
