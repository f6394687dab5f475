// flaky-stack.mjs — the integration tests' whole stack (tests/support/stack.mjs:
// the built worker in workerd through Miniflare, the WeChat simulator, an
// origin), with one difference: the worker's `SESSIONS` KV namespace is
// wrapped by tests/support/flaky-kv.mjs, which asks `decide({op, key})` (a
// function of yours, run in this process) what to do with each get, put and
// delete. The worker's code is the one that ships: it has no fault hook.
//
//   const { startFlakyStack, call } = await import('./flaky-stack.mjs');
//   const stack = await startFlakyStack({ decide: ({ op, key }) => ({ fault: 'none' }), vars: {...} });
//   stack.sessionsKv   // the real namespace behind the wrapper (no faults)
//
// How: stack.mjs builds a one-worker Miniflare, and a wrapped binding needs a
// second worker (the wrapper) next to it. Rather than copy stack.mjs's
// configuration (and fall behind it), this module gives stack.mjs, and only
// stack.mjs, a Miniflare that rewrites the options it is given (see
// miniflare-shim.mjs). So it must be imported before anything else imports
// stack.mjs, and only dynamically (`await import(...)`), as above.
import { registerHooks } from 'node:module';

if (typeof registerHooks !== 'function') {
  throw new Error(`the soak needs Node 22.15 or later (module.registerHooks); this is ${process.version}`);
}

const stackUrl = new URL('../support/stack.mjs', import.meta.url).href;
const shimUrl = new URL('./miniflare-shim.mjs', import.meta.url).href;

registerHooks({
  resolve(specifier, context, nextResolve) {
    if (specifier === 'miniflare' && context.parentURL === stackUrl) {
      return { url: shimUrl, shortCircuit: true };
    }
    return nextResolve(specifier, context);
  },
});

const stack = await import(stackUrl);

export const { call, readResponse, built } = stack;

/**
 * startStack's stack, with SESSIONS wrapped. Options are startStack's
 * (vars, limits, origin, …) plus `decide`.
 *
 * @param {object} options
 * @param {(call: {op: string, key: string}) => {fault: string, ms?: number}} options.decide
 */
export async function startFlakyStack({ decide, ...options }) {
  if (typeof decide !== 'function') throw new TypeError('startFlakyStack: decide is required');
  const s = await stack.startStack({
    ...options,
    // The shim binds SESSIONS itself, as the wrapper; stack.mjs must not bind
    // (or look up) a plain namespace of that name.
    kvBinding: false,
    miniflare: { ...options.miniflare, flakyKv: { decide } },
  });
  const sessionsKv = await s.mf.getKVNamespace('INNER', 'flaky-kv');
  return { ...s, sessionsKv };
}
