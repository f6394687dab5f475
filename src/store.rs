//! Workers KV: the storage trait the shell implements, and the keys.
//!
//! KV is eventually consistent and has no compare-and-swap, so it decides
//! nothing: sessions are decided by the session authority, and KV holds
//! - `session:{sid}` → the authority's read replica of a live session
//!   (`authority::Replica`), written or deleted by the authority before it
//!   answers;
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
pub(crate) mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;

    /// Pending once, then ready: lets other futures of a join run.
    pub(crate) struct YieldOnce(pub bool);

    impl std::future::Future for YieldOnce {
        type Output = ();
        fn poll(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<()> {
            if self.0 {
                return std::task::Poll::Ready(());
            }
            self.0 = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    }

    /// An in-memory store with expiry against a settable clock. Every
    /// operation first gives way to the other futures of a join, as a
    /// real round trip would, so concurrent requests interleave.
    #[derive(Default)]
    pub(crate) struct MemoryStore {
        pub(crate) data: RefCell<HashMap<String, (String, Option<i64>)>>,
        pub(crate) now: Cell<i64>,
        pub(crate) fail: Cell<bool>,
    }

    impl MemoryStore {
        pub(crate) fn raw(&self) -> String {
            self.data
                .borrow()
                .iter()
                .map(|(k, (v, _))| format!("{k}={v}\n"))
                .collect()
        }
    }

    impl Store for MemoryStore {
        async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
            YieldOnce(false).await;
            if self.fail.get() {
                return Err(StoreError);
            }
            let now = self.now.get();
            Ok(self
                .data
                .borrow()
                .get(key)
                .filter(|(_, exp)| exp.is_none_or(|e| e > now))
                .map(|(v, _)| v.clone()))
        }
        async fn put(&self, key: &str, value: &str, ttl: Option<u64>) -> Result<(), StoreError> {
            YieldOnce(false).await;
            if self.fail.get() {
                return Err(StoreError);
            }
            let exp = ttl.map(|t| self.now.get() + t as i64);
            self.data
                .borrow_mut()
                .insert(key.into(), (value.into(), exp));
            Ok(())
        }
        async fn delete(&self, key: &str) -> Result<(), StoreError> {
            YieldOnce(false).await;
            if self.fail.get() {
                return Err(StoreError);
            }
            self.data.borrow_mut().remove(key);
            Ok(())
        }
    }

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
