//! Workers KV in memory.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use super::YieldOnce;
use crate::store::{Store, StoreError};

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
    /// Everything stored, one `key=value` a line (for "is this secret
    /// anywhere in KV?").
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
