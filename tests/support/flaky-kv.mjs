// flaky-kv.mjs — a Workers KV namespace that fails on purpose, for the soak
// (tests/soak/) only. It never runs in production and the worker has no hook
// for it: Miniflare binds it as `SESSIONS` in place of the real namespace (a
// wrapped binding, see tests/soak/flaky-stack.mjs), and the worker and its
// Durable Objects call it exactly as they call KV.
//
// It runs inside workerd. Its env holds two bindings of the worker that wraps
// it: `INNER`, the real (local) KV namespace every call ends up in, and
// `FAULTS`, a service the soak answers from Node. Before each get, put or
// delete it asks FAULTS what to do with that call:
//
//   {"fault": "none"}            pass the call through
//   {"fault": "error"}           throw at once; KV is not touched
//   {"fault": "hang", "ms": N}   answer nothing for N ms, then throw; KV is not touched
//   {"fault": "late"}            make the call, then throw: the change is made
//                                but the caller hears that it failed
//
// A FAULTS that cannot be reached counts as "none", so a soak that is
// shutting down never turns into a storm of made-up failures.

const METHODS = ['get', 'put', 'delete'];

export default function flakyKv(env) {
  const inner = env.INNER;
  const faults = env.FAULTS;

  async function decide(op, key) {
    try {
      const res = await faults.fetch('http://flaky-kv.invalid/decide', {
        method: 'POST',
        body: JSON.stringify({ op, key: String(key) }),
      });
      if (!res.ok) return { fault: 'none' };
      return await res.json();
    } catch {
      return { fault: 'none' };
    }
  }

  function wrap(op) {
    return async (...args) => {
      const d = await decide(op, args[0]);
      switch (d.fault) {
        case 'error':
          throw new Error(`flaky-kv: injected failure of ${op}`);
        case 'hang':
          await new Promise((resolve) => setTimeout(resolve, Math.max(0, Number(d.ms) || 0)));
          throw new Error(`flaky-kv: injected timeout of ${op}`);
        case 'late':
          await inner[op](...args);
          throw new Error(`flaky-kv: ${op} was made, then reported as failed`);
        default:
          return inner[op](...args);
      }
    };
  }

  const kv = Object.fromEntries(METHODS.map((op) => [op, wrap(op)]));
  // Everything else the namespace offers (list, getWithMetadata) is passed
  // through untouched: the worker does not use it.
  kv.list = (...args) => inner.list(...args);
  kv.getWithMetadata = (...args) => inner.getWithMetadata(...args);
  return kv;
}
