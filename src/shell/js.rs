//! Reaching the runtime's bindings: a binding of `env` by its name, and
//! awaiting what a call returned. The bindings themselves are typed
//! `#[wasm_bindgen] extern` declarations (`kv.rs`, `limits.rs`,
//! `authority.rs`), as
//! workers-rs's `worker-sys` declares them, called directly rather than
//! through workers-rs's wrappers, which pass options and values through
//! serde-wasm-bindgen.

use js_sys::{Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{console_error, Env};

use crate::store::StoreError;
use crate::time::Timer;

/// The binding `env[name]`, if there is one (an object): the names are
/// the configuration's (`wrangler.toml`), so this one lookup is by name.
pub(super) fn binding<T: JsCast>(env: &Env, name: &str) -> Option<T> {
    let value = Reflect::get(env, &JsValue::from_str(name)).ok()?;
    value.is_object().then(|| value.unchecked_into())
}

/// Awaits a promise a typed binding returned; a call that threw is that
/// error.
pub(super) async fn settled(called: Result<Promise, JsValue>) -> Result<JsValue, JsValue> {
    JsFuture::from(called?).await
}

/// The text a storage read settled to, `None` where there is nothing
/// (`null`, `undefined`). A failed call, or anything but a string, is a
/// [`StoreError`], logged as `what` failing.
pub(super) async fn read_text(
    called: Result<Promise, JsValue>,
    what: &str,
) -> Result<Option<String>, StoreError> {
    let value = settled(called).await.map_err(|e| {
        console_error!("{what} failed: {e:?}");
        StoreError
    })?;
    if value.is_null() || value.is_undefined() {
        return Ok(None);
    }
    value.as_string().map(Some).ok_or_else(|| {
        console_error!("{what} returned something other than text");
        StoreError
    })
}

/// A storage write (or delete) settled; a failed one is a [`StoreError`],
/// logged as `what` failing.
pub(super) async fn written(
    called: Result<Promise, JsValue>,
    what: &str,
) -> Result<(), StoreError> {
    settled(called).await.map(|_| ()).map_err(|e| {
        console_error!("{what} failed: {e:?}");
        StoreError
    })
}

/// The clock, in milliseconds since the epoch (`Date.now()`, without the
/// `Date` object workers-rs's `Date::now` makes).
pub(crate) fn now_ms() -> u64 {
    // A time since 1970 in ms is a non-negative integer well within u64.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let ms = js_sys::Date::now().max(0.0) as u64;
    ms
}

/// The clock in whole seconds since the epoch, as the core takes it.
pub(crate) fn now_secs() -> i64 {
    i64::try_from(now_ms() / 1000).unwrap_or(i64::MAX)
}

/// The runtime's time for the core: `setTimeout` (through workers-rs's
/// `Delay`, which clears its timeout when dropped, so a call that answers
/// in time leaves no timer behind) and `Date.now()`.
pub(super) struct DelayTimer;

impl Timer for DelayTimer {
    async fn sleep(&self, ms: u32) {
        worker::Delay::from(std::time::Duration::from_millis(u64::from(ms))).await;
    }

    fn now_ms(&self) -> i64 {
        i64::try_from(now_ms()).unwrap_or(i64::MAX)
    }

    fn gave_up(&self, ms: u32) {
        console_error!("a KV or storage call gave no answer in {ms} ms");
    }
}
