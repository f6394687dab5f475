//! The rate limits in memory.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use crate::limits::{Limit, Limiter};
use crate::store::StoreError;

/// Counts requests per (limit, key) and refuses past `max` (none is set
/// unless a test sets it).
#[derive(Default)]
pub(crate) struct MemoryLimiter {
    pub(crate) max: RefCell<HashMap<&'static str, u32>>,
    pub(crate) counts: RefCell<HashMap<(&'static str, String), u32>>,
    /// The limiter itself fails.
    pub(crate) fail: Cell<bool>,
}

impl MemoryLimiter {
    pub(crate) fn set(&self, limit: Limit, max: u32) {
        self.max.borrow_mut().insert(limit.binding(), max);
    }

    pub(crate) fn count(&self, limit: Limit, key: &str) -> u32 {
        self.counts
            .borrow()
            .get(&(limit.binding(), key.to_string()))
            .copied()
            .unwrap_or(0)
    }
}

impl Limiter for MemoryLimiter {
    async fn allow(&self, limit: Limit, key: &str) -> Result<bool, StoreError> {
        if self.fail.get() {
            return Err(StoreError);
        }
        let mut counts = self.counts.borrow_mut();
        let n = counts
            .entry((limit.binding(), key.to_string()))
            .or_insert(0);
        *n += 1;
        Ok(self
            .max
            .borrow()
            .get(limit.binding())
            .is_none_or(|max| *n <= *max))
    }
}
