//! Workers Rate Limiting bindings as the core's [`Limiter`].

use js_sys::Object;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::worker_sys::RateLimiter;
use worker::{console_error, Env};

use super::bindings::Unbound;
use super::js::{binding, settled};

use crate::limits::{Limit, Limiter};
use crate::store::StoreError;

#[wasm_bindgen]
extern "C" {
    /// `limit`'s argument (`RateLimitOptions`).
    #[wasm_bindgen(extends = Object)]
    type LimitOptions;

    #[wasm_bindgen(method, setter)]
    fn set_key(this: &LimitOptions, key: &str);

    /// What `limit` resolves to (`RateLimitOutcome`).
    #[wasm_bindgen(extends = Object)]
    type LimitOutcome;

    #[wasm_bindgen(method, getter)]
    fn success(this: &LimitOutcome) -> JsValue;
}

/// `binding.limit({ key })`, and its outcome's `success`, called directly:
/// workers-rs's `RateLimiter` passes its options and outcome through
/// serde-wasm-bindgen, which the wasm pays for in size.
async fn allow(binding: &RateLimiter, key: &str) -> Result<bool, JsValue> {
    let options: LimitOptions = Object::new().unchecked_into();
    options.set_key(key);
    let outcome: LimitOutcome = settled(binding.limit(options.into()))
        .await?
        .unchecked_into();
    outcome
        .success()
        .as_bool()
        .ok_or_else(|| JsValue::from_str("the outcome has no boolean `success`"))
}

/// The three bindings of `wrangler.toml` (`[[ratelimits]]`).
pub(super) struct WorkerLimits {
    login: RateLimiter,
    refresh: RateLimiter,
    phone: RateLimiter,
}

impl WorkerLimits {
    /// A missing binding is a configuration error naming it: the contract
    /// promises these limits, so the worker does not serve without them.
    pub(super) fn from_env(env: &Env) -> Result<Self, Unbound> {
        let get = |limit: Limit| {
            binding(env, limit.binding()).ok_or(Unbound {
                binding: limit.binding(),
                problem: "is not bound to a rate limit ([[ratelimits]] in wrangler.toml)",
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
        allow(binding, key).await.map_err(|e| {
            console_error!("rate limiter {} failed: {e:?}", limit.binding());
            StoreError
        })
    }
}
