//! The worker's own rate limits (Workers Rate Limiting bindings), so that
//! nobody can spend the app's WeChat quota or the session store by flooding
//! the login endpoints.
//!
//! The limits themselves (how many per period) are set on the bindings in
//! `wrangler.toml`; the core decides what is limited and by which key.

use crate::store::StoreError;

/// What is limited, and by what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    /// `/auth/login`, per client address (binding `LOGIN_LIMITER`).
    Login,
    /// `/auth/refresh`, per client address (binding `REFRESH_LIMITER`).
    Refresh,
    /// `/auth/phone`, per user (binding `PHONE_LIMITER`).
    Phone,
}

impl Limit {
    /// The binding's name in `wrangler.toml`.
    pub(crate) fn binding(self) -> &'static str {
        match self {
            Limit::Login => "LOGIN_LIMITER",
            Limit::Refresh => "REFRESH_LIMITER",
            Limit::Phone => "PHONE_LIMITER",
        }
    }
}

/// Seconds a client is told to wait when over a limit: the bindings count
/// per 60-second period.
pub(crate) const RETRY_AFTER: u32 = 60;

/// Counts one request against `limit` for `key`.
#[allow(async_fn_in_trait)] // used with concrete types only; no Send bound wanted on wasm
pub(crate) trait Limiter {
    /// `Ok(true)` while under the limit. `Err` when the limiter itself
    /// failed; callers then let the request through (a limiter outage must
    /// not lock every user out).
    async fn allow(&self, limit: Limit, key: &str) -> Result<bool, StoreError>;
}

#[cfg(test)]
pub(crate) mod tests {
    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;

    use super::*;

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
}
