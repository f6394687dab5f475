//! What the worker keeps in KV, and the storage trait the shell implements.
//!
//! Keys:
//! - `session:{sid}` → [`SessionRecord`] (expires with the session)
//! - `user:{openid}` → [`UserRecord`]
//! - `wx:stable_token` → the WeChat API token (`wechat::access_token`)
//! - `allow:phone:{purePhoneNumber}` → any value (the staff allowlist)

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::ApiError;
use crate::ids::{OpenId, SessionId};
use crate::secret::SessionKey;
use crate::wechat::open_data::VerifiedPhone;

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

pub(crate) fn session_key(sid: &SessionId) -> String {
    format!("session:{sid}")
}
pub(crate) fn user_key(openid: &OpenId) -> String {
    format!("user:{openid}")
}
pub(crate) fn allow_key(pure_phone: &str) -> String {
    format!("allow:phone:{pure_phone}")
}
pub(crate) const WX_TOKEN_KEY: &str = "wx:stable_token";

/// How many superseded refresh-token hashes a session remembers for reuse
/// detection.
pub(crate) const RETIRED_KEPT: usize = 16;

/// A login session. `session_key` never leaves the worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SessionRecord {
    pub(crate) openid: OpenId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) unionid: Option<String>,
    pub(crate) session_key: SessionKey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) phone: Option<VerifiedPhone>,
    pub(crate) created_at: i64,
    pub(crate) expires_at: i64,
    /// Hash of the current refresh token.
    pub(crate) refresh_hash: String,
    /// Hash of the token it replaced, and when: presented again within the
    /// grace window it yields the current token (sealed below).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) prev_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) rotated_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) sealed_current: Option<String>,
    /// Older hashes: presenting one of them is reuse.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) retired: Vec<String>,
}

impl SessionRecord {
    /// Makes `next_hash` the current refresh token. The replaced one stays
    /// acceptable for the grace window (yielding `sealed_current` when
    /// given); the one before it joins the bounded list of retired hashes.
    pub(crate) fn rotate(&mut self, next_hash: String, sealed_current: Option<String>, now: i64) {
        if let Some(old_prev) = self.prev_hash.take() {
            self.retired.push(old_prev);
            if self.retired.len() > RETIRED_KEPT {
                let excess = self.retired.len() - RETIRED_KEPT;
                self.retired.drain(..excess);
            }
        }
        self.prev_hash = Some(std::mem::replace(&mut self.refresh_hash, next_hash));
        self.sealed_current = sealed_current;
        self.rotated_at = Some(now);
    }
}

/// What the worker knows of a user, per openid.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct UserRecord {
    pub(crate) openid: OpenId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) unionid: Option<String>,
    pub(crate) first_login_at: i64,
    pub(crate) last_login_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) last_login_ip: Option<String>,
    pub(crate) login_count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) phone: Option<VerifiedPhone>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) phone_bound_at: Option<i64>,
}

pub(crate) async fn get_json<S: Store, T: DeserializeOwned>(
    store: &S,
    key: &str,
) -> Result<Option<T>, ApiError> {
    match store.get(key).await? {
        None => Ok(None),
        // A record we cannot read is treated as absent rather than failing
        // every request of that user forever.
        Some(s) => Ok(serde_json::from_str(&s).ok()),
    }
}

pub(crate) async fn put_json<S: Store, T: Serialize>(
    store: &S,
    key: &str,
    value: &T,
    ttl: Option<u64>,
) -> Result<(), ApiError> {
    let s = serde_json::to_string(value).map_err(|_| ApiError::Internal)?;
    store.put(key, &s, ttl).await?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;

    /// An in-memory store with expiry against a settable clock.
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
            if self.fail.get() {
                return Err(StoreError);
            }
            self.data.borrow_mut().remove(key);
            Ok(())
        }
    }
}
