//! Workers KV as the core's [`Store`].

use worker::console_error;

use crate::store::{Store, StoreError};

/// The `SESSIONS` namespace.
pub(super) struct KvStore(pub(super) worker::kv::KvStore);

impl Store for KvStore {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.0.get(key).text().await.map_err(|e| {
            console_error!("kv get failed: {e}");
            StoreError
        })
    }

    async fn put(&self, key: &str, value: &str, ttl: Option<u64>) -> Result<(), StoreError> {
        let mut put = self.0.put(key, value).map_err(|_| StoreError)?;
        if let Some(ttl) = ttl {
            put = put.expiration_ttl(ttl.max(60));
        }
        put.execute().await.map_err(|e| {
            console_error!("kv put failed: {e}");
            StoreError
        })
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.0.delete(key).await.map_err(|e| {
            console_error!("kv delete failed: {e}");
            StoreError
        })
    }
}
