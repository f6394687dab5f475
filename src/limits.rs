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
