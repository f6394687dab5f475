//! Workers KV as the core's [`Store`].
//!
//! The namespace's `get`, `put` and `delete` are called directly rather
//! than through workers-rs's KV builders, which pass their options through
//! serde-wasm-bindgen and, with it, float formatting: about 20 KB of wasm
//! for one `{expirationTtl: n}` object.

use js_sys::{Object, Promise};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::Env;

use super::js::{binding, read_text, written};

use crate::store::{Store, StoreError};

/// KV's least `expirationTtl`, in seconds: it refuses a shorter one.
const MIN_KV_TTL: u64 = 60;

#[wasm_bindgen]
extern "C" {
    /// A KV namespace binding (`KVNamespace` in workers-types).
    #[wasm_bindgen(extends = Object)]
    type KvNamespace;

    #[wasm_bindgen(method, catch)]
    fn get(this: &KvNamespace, key: &str) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method, catch, js_name = get)]
    fn get_with(this: &KvNamespace, key: &str, options: &GetOptions) -> Result<Promise, JsValue>;

    /// `get`'s options (`KVNamespaceGetOptions`).
    #[wasm_bindgen(extends = Object)]
    type GetOptions;

    #[wasm_bindgen(method, setter = cacheTtl)]
    fn set_cache_ttl(this: &GetOptions, seconds: f64);

    #[wasm_bindgen(method, catch)]
    fn put(
        this: &KvNamespace,
        key: &str,
        value: &str,
        options: &PutOptions,
    ) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method, catch)]
    fn delete(this: &KvNamespace, key: &str) -> Result<Promise, JsValue>;

    /// `put`'s options (`KVNamespacePutOptions`).
    #[wasm_bindgen(extends = Object)]
    type PutOptions;

    #[wasm_bindgen(method, setter = expirationTtl)]
    fn set_expiration_ttl(this: &PutOptions, seconds: f64);
}

/// The `SESSIONS` namespace.
pub(super) struct KvStore(KvNamespace);

impl KvStore {
    /// The KV namespace bound as `name`, if there is one.
    pub(super) fn bound(env: &Env, name: &str) -> Option<KvStore> {
        binding(env, name).map(KvStore)
    }
}

impl Store for KvStore {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        read_text(self.0.get(key), "kv get").await
    }

    async fn get_cached(&self, key: &str, cache_ttl: u64) -> Result<Option<String>, StoreError> {
        let options: GetOptions = Object::new().unchecked_into();
        // Seconds fit an f64 exactly.
        #[allow(clippy::cast_precision_loss)]
        options.set_cache_ttl(cache_ttl as f64);
        read_text(self.0.get_with(key, &options), "kv get").await
    }

    async fn put(&self, key: &str, value: &str, ttl: Option<u64>) -> Result<(), StoreError> {
        let options: PutOptions = Object::new().unchecked_into();
        if let Some(ttl) = ttl {
            // Seconds fit an f64 exactly.
            #[allow(clippy::cast_precision_loss)]
            options.set_expiration_ttl(ttl.max(MIN_KV_TTL) as f64);
        }
        written(self.0.put(key, value, &options), "kv put").await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        written(self.0.delete(key), "kv delete").await
    }
}
