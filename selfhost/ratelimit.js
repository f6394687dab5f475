// The worker's rate limits in the self-host profile: an extension module
// that workerd instantiates once per binding (a `wrapped` binding), giving
// the worker what Workers Rate Limiting gives it on Cloudflare: an object
// whose `limit({ key })` resolves to `{ success }`.
//
// A plain service binding cannot stand in for it: the worker calls the
// binding's `limit` method, which on a service binding becomes a JS RPC
// call, not a fetch.
//
// Counting is in memory, in fixed windows of `period` seconds aligned to the
// clock (as Cloudflare's and Miniflare's are): one process serves the whole
// deployment, so one counter per key is exact. A restart starts every
// window afresh. Each binding keeps only the current window's keys.
//
// Inner bindings (selfhost/wx-edge.capnp): `limit` (requests per window)
// and `period` (10 or 60), both JSON numbers.

const PERIODS = [10, 60];

export class FixedWindowLimiter {
  constructor(limit, period, now = () => Date.now()) {
    if (!Number.isSafeInteger(limit) || limit < 1) throw new Error(`rate limit: bad limit ${limit}`);
    if (!PERIODS.includes(period)) throw new Error(`rate limit: period must be 10 or 60, not ${period}`);
    this.limitPerWindow = limit;
    this.period = period;
    this.now = now;
    this.window = -1;
    this.counts = new Map();
  }

  /** Counts one request for `key`; true while the window's count is within the limit. */
  take(key) {
    const window = Math.floor(this.now() / (this.period * 1000));
    if (window !== this.window) {
      this.window = window;
      this.counts = new Map();
    }
    const count = (this.counts.get(key) ?? 0) + 1;
    this.counts.set(key, count);
    return count <= this.limitPerWindow;
  }

  // The binding's API, as Workers Rate Limiting has it.
  async limit(options) {
    const key = options?.key;
    if (typeof key !== 'string') throw new TypeError('rate limit: key must be a string');
    return { success: this.take(key) };
  }
}

export default function makeBinding(env) {
  return new FixedWindowLimiter(env.limit, env.period);
}
