//! Workers KV as the core's [`Store`].
//!
//! The namespace's `get`, `put` and `delete` are called directly rather
//! than through workers-rs's KV builders, which pass their options through
//! serde-wasm-bindgen and, with it, float formatting: about 20 KB of wasm
//! for one `{expirationTtl: n}` object.

use js_sys::{Function, Object, Reflect};
use wasm_bindgen::JsValue;
use worker::console_error;
use worker::Env;

use super::js::{method, object, settle};

use crate::store::{Store, StoreError};

/// The `SESSIONS` namespace.
pub(super) struct KvStore {
    namespace: Object,
    get: Function,
    put: Function,
    delete: Function,
}

impl KvStore {
    /// The KV namespace bound as `binding`, if there is one.
    pub(super) fn bound(env: &Env, binding: &str) -> Option<KvStore> {
        let namespace = object(env, binding)?;
        Some(KvStore {
            get: method(&namespace, "get")?,
            put: method(&namespace, "put")?,
            delete: method(&namespace, "delete")?,
            namespace,
        })
    }
}

impl Store for KvStore {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let value = settle(self.get.call1(&self.namespace, &JsValue::from_str(key)))
            .await
            .map_err(|e| {
                console_error!("kv get failed: {e:?}");
                StoreError
            })?;
        if value.is_null() || value.is_undefined() {
            return Ok(None);
        }
        value.as_string().map(Some).ok_or_else(|| {
            console_error!("kv get returned something other than text");
            StoreError
        })
    }

    async fn put(&self, key: &str, value: &str, ttl: Option<u64>) -> Result<(), StoreError> {
        let options = Object::new();
        if let Some(ttl) = ttl {
            // KV's least TTL is 60 s. Seconds fit an f64 exactly.
            #[allow(clippy::cast_precision_loss)]
            let ttl = ttl.max(60) as f64;
            Reflect::set(
                &options,
                &JsValue::from_str("expirationTtl"),
                &JsValue::from_f64(ttl),
            )
            .map_err(|_| StoreError)?;
        }
        settle(self.put.call3(
            &self.namespace,
            &JsValue::from_str(key),
            &JsValue::from_str(value),
            &options,
        ))
        .await
        .map(|_| ())
        .map_err(|e| {
            console_error!("kv put failed: {e:?}");
            StoreError
        })
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        settle(self.delete.call1(&self.namespace, &JsValue::from_str(key)))
            .await
            .map(|_| ())
            .map_err(|e| {
                console_error!("kv delete failed: {e:?}");
                StoreError
            })
    }
}
