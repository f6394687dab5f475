//! The replica outbox: the changes KV must still learn, saved with the
//! state they follow.
//!
//! A step's effects are queued here in the same state (so in the same
//! storage write) as the change that made them; the server then applies
//! them to KV and removes what KV accepted. What KV refused stays, and is
//! retried — by the next request, or by the alarm with a backoff — until
//! KV accepts it. Entries are coalesced per session: only the latest
//! desired replica of a session is kept, so a retry never writes a stale
//! one and a delete is never overtaken by an older put.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Effect, Replica};
use crate::ids::SessionId;

/// The first wait after KV refused, in seconds; it doubles per failure.
pub(crate) const BACKOFF_FIRST: i64 = 1;
/// The longest wait between retries, in seconds.
pub(crate) const BACKOFF_MAX: i64 = 300;

/// What `session:{sid}` must become.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Pending {
    /// Written as this replica.
    Put(Replica),
    /// Deleted.
    Delete,
}

/// The replica changes not yet accepted by KV.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Outbox {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) pending: BTreeMap<SessionId, Pending>,
    /// Failed attempts in a row to drain it (sets the backoff).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) failures: u32,
    /// When (seconds since the epoch) the next retry is due, after a
    /// failure; `None` when it is due at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) retry_at: Option<i64>,
}

// serde's `skip_serializing_if` passes a reference.
#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Outbox {
    pub(crate) fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.failures == 0 && self.retry_at.is_none()
    }

    /// Queues `effects`, in order: the latest for a session wins.
    pub(crate) fn queue(&mut self, effects: &[Effect]) {
        for effect in effects {
            match effect {
                Effect::Put(sid, replica) => {
                    self.pending
                        .insert(sid.clone(), Pending::Put(replica.clone()));
                }
                Effect::Delete(sid) => {
                    self.pending.insert(sid.clone(), Pending::Delete);
                }
            }
        }
    }

    /// Every entry, to apply in order.
    pub(crate) fn entries(&self) -> Vec<(SessionId, Pending)> {
        self.pending
            .iter()
            .map(|(sid, p)| (sid.clone(), p.clone()))
            .collect()
    }

    /// KV accepted `entry` for `sid`: it leaves the outbox (unless a newer
    /// one replaced it meanwhile); once empty, the backoff starts over.
    pub(crate) fn accepted(&mut self, sid: &SessionId, entry: &Pending) {
        if self.pending.get(sid) == Some(entry) {
            self.pending.remove(sid);
        }
        if self.pending.is_empty() {
            self.failures = 0;
            self.retry_at = None;
        }
    }

    /// KV refused at `now`: the next retry waits 1 s, doubling per failure
    /// in a row, up to [`BACKOFF_MAX`].
    pub(crate) fn failed(&mut self, now: i64) {
        self.failures = self.failures.saturating_add(1);
        let doublings = self.failures.saturating_sub(1).min(16);
        let wait = (BACKOFF_FIRST << doublings).min(BACKOFF_MAX);
        self.retry_at = Some(now.saturating_add(wait));
    }

    /// Whether a retry is due at `now` (an outbox that never failed is due
    /// at once: an object stopped between its storage and KV writes).
    pub(crate) fn due(&self, now: i64) -> bool {
        !self.pending.is_empty() && self.retry_at.is_none_or(|at| at <= now)
    }

    /// When the alarm must retry, in seconds: `None` when nothing waits.
    pub(crate) fn retry_time(&self, now: i64) -> Option<i64> {
        if self.pending.is_empty() {
            return None;
        }
        Some(self.retry_at.unwrap_or(now.saturating_add(BACKOFF_FIRST)))
    }
}
