//! Workers Rate Limiting bindings as the core's [`Limiter`].

use js_sys::{Function, Object, Reflect};
use wasm_bindgen::JsValue;
use worker::{console_error, Env};

use super::js::{method, object, settle};

use crate::error::ApiError;
use crate::limits::{Limit, Limiter};
use crate::store::StoreError;

/// One `[[ratelimits]]` binding and its `limit` method, called directly:
/// workers-rs's `RateLimiter` passes its options and outcome through
/// serde-wasm-bindgen, which the wasm pays for in size.
struct Binding {
    this: Object,
    limit: Function,
}

impl Binding {
    fn bound(env: &Env, name: &str) -> Option<Binding> {
        let this = object(env, name)?;
        let limit = method(&this, "limit")?;
        Some(Binding { this, limit })
    }

    /// `binding.limit({ key })`, and its outcome's `success`.
    async fn allow(&self, key: &str) -> Result<bool, JsValue> {
        let options = Object::new();
        Reflect::set(&options, &JsValue::from_str("key"), &JsValue::from_str(key))?;
        let outcome = settle(self.limit.call1(&self.this, &options)).await?;
        Reflect::get(&outcome, &JsValue::from_str("success"))?
            .as_bool()
            .ok_or_else(|| JsValue::from_str("the outcome has no boolean `success`"))
    }
}

/// The three bindings of `wrangler.toml` (`[[ratelimits]]`).
pub(super) struct WorkerLimits {
    login: Binding,
    refresh: Binding,
    phone: Binding,
}

impl WorkerLimits {
    /// A missing binding is a configuration error naming it: the contract
    /// promises these limits, so the worker does not serve without them.
    pub(super) fn from_env(env: &Env) -> Result<Self, ApiError> {
        let get = |limit: Limit| {
            Binding::bound(env, limit.binding()).ok_or_else(|| {
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
        binding.allow(key).await.map_err(|e| {
            console_error!("rate limiter {} failed: {e:?}", limit.binding());
            StoreError
        })
    }
}
