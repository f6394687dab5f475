// The self-host profile's rate-limit binding (selfhost/ratelimit.js), on
// its own: fixed windows aligned to the clock, one count per key, the
// Workers Rate Limiting API the worker calls.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import makeBinding, { FixedWindowLimiter } from '../../selfhost/ratelimit.js';

test('counts per key up to the limit within a window, then refuses', async () => {
  let now = 60_000 * 1000; // the start of a window
  const limiter = new FixedWindowLimiter(3, 60, () => now);
  const outcomes = [];
  for (let i = 0; i < 5; i++) outcomes.push((await limiter.limit({ key: 'a' })).success);
  assert.deepEqual(outcomes, [true, true, true, false, false]);
  assert.equal((await limiter.limit({ key: 'b' })).success, true, 'another key has its own count');
  now += 59_999;
  assert.equal((await limiter.limit({ key: 'a' })).success, false, 'still the same window');
  now += 1;
  assert.equal((await limiter.limit({ key: 'a' })).success, true, 'a new window starts afresh');
  assert.equal(limiter.counts.size, 1, 'only the current window is kept');
});

test('the binding is made from its inner bindings; bad settings and keys are refused', async () => {
  const binding = makeBinding({ limit: 2, period: 10 });
  assert.equal(typeof binding.limit, 'function');
  assert.equal((await binding.limit({ key: 'k' })).success, true);
  await assert.rejects(binding.limit({}), TypeError);
  await assert.rejects(binding.limit({ key: 7 }), TypeError);
  await assert.rejects(binding.limit(undefined), TypeError);
  assert.throws(() => makeBinding({ limit: 0, period: 60 }), /bad limit/);
  assert.throws(() => makeBinding({ limit: '300', period: 60 }), /bad limit/);
  assert.throws(() => makeBinding({ limit: 300, period: 30 }), /period/);
});

test('keys that look like object properties are counted like any other', async () => {
  const limiter = new FixedWindowLimiter(1, 60, () => 0);
  for (const key of ['__proto__', 'constructor', 'toString', '']) {
    assert.equal((await limiter.limit({ key })).success, true, key);
    assert.equal((await limiter.limit({ key })).success, false, key);
  }
});
