//! Workers KV that fails on purpose, and a virtual clock: for the replica
//! outbox's tests.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ops::Range;
use std::rc::Rc;

use super::{MemoryStore, YieldOnce};
use crate::authority::timeout::Timer;
use crate::store::{Store, StoreError};

/// Virtual time in ms, shared by a [`ClockTimer`] and a [`FlakyKv`].
pub(crate) type VirtualClock = Rc<Cell<i64>>;

/// A timer on a [`VirtualClock`]: a sleep gives way once, then moves the
/// clock on when it ends; nothing else does. A sleep that loses a race (a
/// KV call's timeout, when KV answered) is dropped first and moves nothing.
pub(crate) struct ClockTimer(pub(crate) VirtualClock);

impl Timer for ClockTimer {
    async fn sleep(&self, ms: u32) {
        YieldOnce(false).await;
        self.0.set(self.0.get() + i64::from(ms));
    }
    fn now_ms(&self) -> i64 {
        self.0.get()
    }
}

/// KV's limit: one write a second per key.
pub(crate) const KV_WRITES_PER_KEY_MS: i64 = 1_000;

/// [`MemoryStore`] whose writes (puts and deletes, counted from 0) fail
/// when their number is in `failing`, or never answer while `hang` is set
/// (an object stopped mid-call). With a `clock`, a write to a key less
/// than a second (of that clock) after the last one it accepted there is
/// refused, as KV's 429 would be. Reads always pass.
#[derive(Default)]
pub(crate) struct FlakyKv {
    pub(crate) inner: MemoryStore,
    pub(crate) failing: RefCell<Range<usize>>,
    /// Writes attempted so far.
    pub(crate) writes: Cell<usize>,
    pub(crate) hang: Cell<bool>,
    pub(crate) clock: Option<VirtualClock>,
    /// Writes refused for coming too soon after the last to their key.
    pub(crate) too_soon: Cell<usize>,
    last: RefCell<HashMap<String, i64>>,
}

impl FlakyKv {
    /// A store limited to one write a second per key of `clock`.
    pub(crate) fn paced(clock: VirtualClock) -> Self {
        FlakyKv {
            clock: Some(clock),
            ..FlakyKv::default()
        }
    }

    /// Fails the writes numbered in `range` from now on (0: the next).
    pub(crate) fn fail_writes(&self, range: Range<usize>) {
        let at = self.writes.get();
        *self.failing.borrow_mut() = range.start + at..range.end.saturating_add(at);
    }

    /// Every write succeeds again.
    pub(crate) fn recover(&self) {
        *self.failing.borrow_mut() = 0..0;
    }

    /// Whether the next write may go through.
    async fn admit(&self, key: &str) -> Result<(), StoreError> {
        let n = self.writes.get();
        self.writes.set(n + 1);
        if self.hang.get() {
            std::future::pending::<()>().await;
        }
        if self.failing.borrow().contains(&n) {
            YieldOnce(false).await;
            return Err(StoreError);
        }
        if let Some(clock) = &self.clock {
            let now = clock.get();
            let mut last = self.last.borrow_mut();
            if last
                .get(key)
                .is_some_and(|t| now - t < KV_WRITES_PER_KEY_MS)
            {
                self.too_soon.set(self.too_soon.get() + 1);
                return Err(StoreError);
            }
            last.insert(key.to_string(), now);
        }
        Ok(())
    }
}

impl Store for FlakyKv {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.inner.get(key).await
    }
    async fn put(&self, key: &str, value: &str, ttl: Option<u64>) -> Result<(), StoreError> {
        self.admit(key).await?;
        self.inner.put(key, value, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.admit(key).await?;
        self.inner.delete(key).await
    }
}
