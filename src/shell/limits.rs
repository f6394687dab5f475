//! Workers Rate Limiting bindings as the core's [`Limiter`].

use worker::{console_error, Env, RateLimiter};

use crate::error::ApiError;
use crate::limits::{Limit, Limiter};
use crate::store::StoreError;

/// The three bindings of `wrangler.toml` (`[[ratelimits]]`).
pub(super) struct WorkerLimits {
    login: RateLimiter,
    refresh: RateLimiter,
    phone: RateLimiter,
}

impl WorkerLimits {
    /// A missing binding is a configuration error naming it: the contract
    /// promises these limits, so the worker does not serve without them.
    pub(super) fn from_env(env: &Env) -> Result<Self, ApiError> {
        let get = |limit: Limit| {
            env.rate_limiter(limit.binding()).map_err(|_| {
                console_error!(
                    "configuration error: {} is not bound to a rate limit ([[ratelimits]])",
                    limit.binding()
                );
                ApiError::ServerMisconfigured {
                    variable: limit.binding(),
                    problem: "is not bound to a rate limit ([[ratelimits]] in wrangler.toml)",
                }
            })
        };
        Ok(WorkerLimits {
            login: get(Limit::Login)?,
            refresh: get(Limit::Refresh)?,
            phone: get(Limit::Phone)?,
        })
    }
}

impl Limiter for WorkerLimits {
    async fn allow(&self, limit: Limit, key: &str) -> Result<bool, StoreError> {
        let binding = match limit {
            Limit::Login => &self.login,
            Limit::Refresh => &self.refresh,
            Limit::Phone => &self.phone,
        };
        match binding.limit(key.to_string()).await {
            Ok(outcome) => Ok(outcome.success),
            Err(e) => {
                console_error!("rate limiter {} failed: {e}", limit.binding());
                Err(StoreError)
            }
        }
    }
}
