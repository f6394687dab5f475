//! Calling the runtime's bindings directly: a property that must be an
//! object, a method that must be a function, and awaiting what a call
//! returned. KV, the rate limits and the authority's storage are reached
//! this way rather than through workers-rs's wrappers, which pass options
//! and values through serde-wasm-bindgen.

use js_sys::{Function, Object, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;

/// `of[name]`, if it is an object.
pub(super) fn object(of: &JsValue, name: &str) -> Option<Object> {
    Reflect::get(of, &JsValue::from_str(name))
        .ok()?
        .dyn_into()
        .ok()
}

/// `of[name]`, if it is a function.
pub(super) fn method(of: &Object, name: &str) -> Option<Function> {
    Reflect::get(of, &JsValue::from_str(name))
        .ok()?
        .dyn_into()
        .ok()
}

/// Awaits what a call returned (a promise or a plain value); a call that
/// threw is that error.
pub(super) async fn settle(called: Result<JsValue, JsValue>) -> Result<JsValue, JsValue> {
    JsFuture::from(Promise::resolve(&called?)).await
}
