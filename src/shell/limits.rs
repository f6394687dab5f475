//! Workers Rate Limiting bindings as the core's [`Limiter`].

use js_sys::Object;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::worker_sys::RateLimiter;
use worker::{console_error, console_log, Env};

use super::bindings::Unbound;
use super::js::{binding, settled};

use crate::limits::{FailureCounts, Limit, Limiter};
use crate::logs::limiter_failed;
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

/// The bindings of `wrangler.toml` (`[[ratelimits]]`), one per [`Limit`],
/// in [`Limit::ALL`]'s order, and how often each failed in this isolate.
pub(super) struct WorkerLimits {
    bindings: Vec<(Limit, RateLimiter)>,
    failures: FailureCounts,
}

impl WorkerLimits {
    /// A missing binding is a configuration error naming it: the contract
    /// promises these limits, so the worker does not serve without them.
    pub(super) fn from_env(env: &Env) -> Result<Self, Unbound> {
        let bindings = Limit::ALL
            .iter()
            .map(|&limit| {
                binding(env, limit.binding())
                    .map(|b| (limit, b))
                    .ok_or(Unbound {
                        binding: limit.binding(),
                        problem: "is not bound to a rate limit ([[ratelimits]] in wrangler.toml)",
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(WorkerLimits {
            bindings,
            failures: FailureCounts::default(),
        })
    }
}

impl Limiter for WorkerLimits {
    async fn allow(&self, limit: Limit, key: &str) -> Result<bool, StoreError> {
        let Some((_, binding)) = self.bindings.iter().find(|(l, _)| *l == limit) else {
            return Err(StoreError);
        };
        allow(binding, key).await.map_err(|e| {
            // One line per failure, with the isolate's count so far; the
            // runtime's message on its own line (it may be long).
            let failures = self.failures.record(limit);
            console_log!("{}", limiter_failed(limit, failures));
            console_error!("rate limiter {} failed: {e:?}", limit.binding());
            StoreError
        })
    }
}
