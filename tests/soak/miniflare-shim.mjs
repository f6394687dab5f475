// miniflare-shim.mjs — the Miniflare that tests/support/stack.mjs gets when it
// is loaded through flaky-stack.mjs. Options without `flakyKv` go to
// Miniflare untouched. Options with it (stack.mjs's one worker) become two
// workers: the same worker, now with `SESSIONS` bound as a wrapped binding,
// and the wrapper, tests/support/flaky-kv.mjs, whose own bindings are the
// real namespace (`INNER`) and the fault oracle (`FAULTS`, answered in this
// process by `flakyKv.decide`).
import { fileURLToPath } from 'node:url';
import { Miniflare as RealMiniflare, Response } from 'miniflare';

const wrapperPath = fileURLToPath(new URL('../support/flaky-kv.mjs', import.meta.url));

export * from 'miniflare';

export class Miniflare extends RealMiniflare {
  constructor(opts) {
    super(opts && opts.flakyKv ? withFlakyKv(opts) : opts);
  }
}

function withFlakyKv({ flakyKv, ...opts }) {
  const { decide } = flakyKv;
  const kvNamespaces = opts.kvNamespaces ?? [];
  if ((Array.isArray(kvNamespaces) ? kvNamespaces : Object.keys(kvNamespaces)).includes('SESSIONS')) {
    throw new Error('miniflare-shim: SESSIONS is already a plain KV namespace (start the stack with kvBinding: false)');
  }
  const worker = { ...opts, wrappedBindings: { ...opts.wrappedBindings, SESSIONS: 'flaky-kv' } };
  const wrapper = {
    name: 'flaky-kv',
    modules: true,
    scriptPath: wrapperPath,
    kvNamespaces: { INNER: 'soak-sessions' },
    serviceBindings: {
      async FAULTS(request) {
        let answer;
        try {
          answer = decide(await request.json());
        } catch (e) {
          // A broken oracle must be loud, not a silent "no fault".
          console.error('flaky-kv: decide threw:', e);
          answer = { fault: 'none' };
        }
        return new Response(JSON.stringify(answer), { headers: { 'content-type': 'application/json' } });
      },
    },
  };
  // In a multi-worker Miniflare the top level holds the shared options
  // (handleRuntimeStdio, host, port, …); each worker's own come from `workers`.
  return { ...opts, workers: [worker, wrapper] };
}
