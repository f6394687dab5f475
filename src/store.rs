//! Workers KV: the storage trait the shell implements, and the keys.
//!
//! KV is eventually consistent and has no compare-and-swap, so it decides
//! nothing: sessions are decided by the session authority, and KV holds
//! - `session:{sid}` → the authority's read replica of a live session
//!   (`authority::Replica`), written or deleted by the authority before it
//!   answers — through its outbox, so a write KV refused is retried until
//!   KV accepts it, at most one write a second per key;
//! - `wx:stable_token` → the WeChat API token (`wechat::access_token`);
//! - `allow:phone:+{countryCode}{purePhoneNumber}` → any value (the staff
//!   allowlist, E.164).

use serde::{de::DeserializeOwned, Serialize};

use crate::ids::SessionId;
use crate::phone::Phone;

/// The store failed or timed out (details go to the log only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoreError;

/// A key-value store with per-key expiry (Workers KV in the worker).
#[allow(async_fn_in_trait)] // used with concrete types only; no Send bound wanted on wasm
pub(crate) trait Store {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Writes `value`; it disappears `ttl` seconds from now when given.
    async fn put(&self, key: &str, value: &str, ttl: Option<u64>) -> Result<(), StoreError>;
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// [`Store::get`], asking the store's edge cache to keep the value at
    /// most `cache_ttl` seconds (Workers KV's `cacheTtl`).
    async fn get_cached(&self, key: &str, cache_ttl: u64) -> Result<Option<String>, StoreError> {
        let _ = cache_ttl;
        self.get(key).await
    }
}

impl<S: Store + ?Sized> Store for &S {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        (**self).get(key).await
    }
    async fn put(&self, key: &str, value: &str, ttl: Option<u64>) -> Result<(), StoreError> {
        (**self).put(key, value, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        (**self).delete(key).await
    }
    async fn get_cached(&self, key: &str, cache_ttl: u64) -> Result<Option<String>, StoreError> {
        (**self).get_cached(key, cache_ttl).await
    }
}

/// The replica of session `sid`.
pub(crate) fn replica_key(sid: &SessionId) -> String {
    format!("session:{sid}")
}

/// The allowlist entry of `phone`, in E.164: a number is listed with its
/// country code, so `+1 3105551234` never admits the mainland mobile
/// `13105551234`.
pub(crate) fn allow_key(phone: &Phone) -> String {
    format!(
        "allow:phone:+{}{}",
        phone.country_code(),
        phone.pure_phone_number()
    )
}

pub(crate) const WX_TOKEN_KEY: &str = "wx:stable_token";

/// Reads a JSON record; one that does not parse counts as absent.
pub(crate) async fn get_json<S: Store, T: DeserializeOwned>(
    store: &S,
    key: &str,
) -> Result<Option<T>, StoreError> {
    match store.get(key).await? {
        None => Ok(None),
        // A replica or cache entry we cannot read is treated as absent (it
        // is rebuilt from its source) rather than failing every request.
        Some(s) => Ok(serde_json::from_str(&s).ok()),
    }
}

/// [`get_json`] through [`Store::get_cached`].
pub(crate) async fn get_json_cached<S: Store, T: DeserializeOwned>(
    store: &S,
    key: &str,
    cache_ttl: u64,
) -> Result<Option<T>, StoreError> {
    match store.get_cached(key, cache_ttl).await? {
        None => Ok(None),
        Some(s) => Ok(serde_json::from_str(&s).ok()),
    }
}

pub(crate) async fn put_json<S: Store, T: Serialize>(
    store: &S,
    key: &str,
    value: &T,
    ttl: Option<u64>,
) -> Result<(), StoreError> {
    let s = serde_json::to_string(value).map_err(|_| StoreError)?;
    store.put(key, &s, ttl).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlist_keys_are_e164() {
        let phone = |cc: &str, pure: &str| Phone::for_tests(pure, pure, cc);
        assert_eq!(
            allow_key(&phone("86", "13800138000")),
            "allow:phone:+8613800138000"
        );
        // A US number and the mainland mobile with the same digits differ.
        assert_ne!(
            allow_key(&phone("1", "3105551234")),
            allow_key(&phone("86", "13105551234"))
        );
        assert_ne!(
            allow_key(&phone("852", "61234567")),
            allow_key(&phone("65", "61234567"))
        );
    }
}
