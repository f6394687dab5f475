// faults.mjs — seeded randomness and the fault oracle the soak's flaky KV asks.

/** A seeded generator of floats in [0, 1): sfc32, seeded by a hash of `seed` and `stream`. */
export function rng(seed, stream = '') {
  // xmur3: a string → 32-bit seeds.
  const text = `${seed}/${stream}`;
  let h = 1779033703 ^ text.length;
  for (let i = 0; i < text.length; i++) {
    h = Math.imul(h ^ text.charCodeAt(i), 3432918353);
    h = (h << 13) | (h >>> 19);
  }
  const next = () => {
    h = Math.imul(h ^ (h >>> 16), 2246822507);
    h = Math.imul(h ^ (h >>> 13), 3266489909);
    return (h ^= h >>> 16) >>> 0;
  };
  let a = next();
  let b = next();
  let c = next();
  let d = next();
  return () => {
    a >>>= 0;
    b >>>= 0;
    c >>>= 0;
    d >>>= 0;
    let t = (a + b) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    d = (d + 1) | 0;
    t = (t + d) | 0;
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
}

/** The fault kinds tests/support/flaky-kv.mjs knows. */
export const FAULT_KINDS = ['error', 'hang', 'late'];

/**
 * The oracle: while `active`, each KV get / put / delete fails with
 * probability `rate`, as one of `kinds` (chosen uniformly). Counts every
 * call and every fault; `onFault(op, key, kind)` hears about each fault.
 */
export function faultOracle({ seed, rate, kinds, hangMs, onFault = () => {} }) {
  for (const k of kinds) {
    if (!FAULT_KINDS.includes(k)) throw new Error(`unknown KV fault kind ${JSON.stringify(k)} (known: ${FAULT_KINDS})`);
  }
  const random = rng(seed, 'kv-faults');
  const counts = {};
  const oracle = {
    active: false,
    counts,
    decide({ op, key }) {
      const c = (counts[op] ??= { calls: 0, faults: 0, ...Object.fromEntries(kinds.map((k) => [k, 0])) });
      c.calls++;
      if (!oracle.active || kinds.length === 0 || random() >= rate) return { fault: 'none' };
      const kind = kinds[Math.floor(random() * kinds.length)];
      c.faults++;
      c[kind]++;
      onFault(op, key, kind);
      return kind === 'hang' ? { fault: 'hang', ms: hangMs } : { fault: kind };
    },
  };
  return oracle;
}
