//! An isolate's short memory of the KV replica's answers, for
//! `SESSION_CHECK=every-request` (issue 20's first lever).
//!
//! A KV read is most of what `every-request` costs a proxied request, and
//! a session's requests come in bursts: so an isolate keeps what the
//! replica said about a session for `REPLICA_CACHE_SECS` seconds
//! , and an answer that the session is
//! gone (no replica) for at most [`MAX_NEGATIVE_SECS`] and never longer
//! than a live one. `0` turns the cache off: every request reads KV.
//!
//! The revocation bound stays KV's own (60 s): the replica is read with
//! `cacheTtl` [`kv_cache_ttl`] = 60 − `REPLICA_CACHE_SECS`, so an answer KV
//! served from its edge cache was fetched from KV's origin at most that
//! long ago, and this cache adds at most the difference. The isolate that
//! revoked a session forgets it at once ([`ReplicaCache::forget`]), and a
//! read that was under way meanwhile cannot bring it back.
//!
//! Bounded: at most [`MAX_REPLICAS`] sessions; when full, what has expired
//! goes first, then the oldest. The clock is an argument; an answer from
//! "after" `now` (the clock went backwards) is not served.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::authority::Replica;
use crate::config::MAX_REPLICA_CACHE_SECS;
use crate::ids::{OpenId, SessionId};

/// The most sessions one isolate remembers.
pub(crate) const MAX_REPLICAS: usize = 4096;

/// The longest a "no such session" answer is kept.
pub(crate) const MAX_NEGATIVE_SECS: i64 = 1;

/// How long KV's edge cache has held a value at most (its default
/// `cacheTtl`), and the least `cacheTtl` it accepts.
const KV_DEFAULT_CACHE_TTL: u64 = 60;
const KV_MIN_CACHE_TTL: u64 = 30;

/// The `cacheTtl` to read replicas with when this cache keeps them for
/// `secs`: the two together never exceed KV's default 60 s. `None`: KV's
/// default (the cache is off).
pub(crate) fn kv_cache_ttl(secs: u64) -> Option<u64> {
    (secs > 0).then(|| {
        KV_DEFAULT_CACHE_TTL
            .saturating_sub(secs)
            .max(KV_MIN_CACHE_TTL)
    })
}

struct Entry {
    /// `None`: the replica was missing, or this isolate revoked it.
    replica: Option<Replica>,
    at: i64,
    /// Made by [`ReplicaCache::forget`]: a read under way is not stored
    /// over it (while the entry is fresh: a "no such session" answer's
    /// [`MAX_NEGATIVE_SECS`]; KV, which the authority told before it
    /// answered, decides afterwards).
    revoked_here: bool,
}

/// How long answers are kept: `REPLICA_CACHE_SECS` (0: not at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Keep {
    positive: i64,
}

impl Keep {
    /// Live replicas `secs` seconds (at most [`MAX_REPLICA_CACHE_SECS`]).
    pub(crate) fn secs(secs: u64) -> Self {
        Keep {
            positive: i64::try_from(secs.min(MAX_REPLICA_CACHE_SECS)).unwrap_or(0),
        }
    }

    fn off(self) -> bool {
        self.positive == 0
    }

    fn negative(self) -> i64 {
        self.positive.min(MAX_NEGATIVE_SECS)
    }

    fn fresh(self, e: &Entry, now: i64) -> bool {
        let ttl = if e.replica.is_some() {
            self.positive
        } else {
            self.negative()
        };
        e.at <= now && now - e.at < ttl
    }
}

/// What one isolate remembers of the replicas it read.
#[derive(Default)]
pub(crate) struct ReplicaCache {
    entries: RefCell<HashMap<SessionId, Entry>>,
}

impl ReplicaCache {
    /// What the replica of `sid` said, while `keep` lets it be used at
    /// `now`: `Some(None)` for "no such session".
    #[allow(clippy::option_option)] // outer: remembered or not; inner: the replica's own answer
    pub(crate) fn get(&self, keep: Keep, sid: &SessionId, now: i64) -> Option<Option<Replica>> {
        if keep.off() {
            return None;
        }
        let entries = self.entries.borrow();
        let e = entries.get(sid)?;
        keep.fresh(e, now).then(|| e.replica.clone())
    }

    /// Keeps what the replica of `sid` said at `now`, unless this isolate
    /// revoked the session since.
    pub(crate) fn put(&self, keep: Keep, sid: &SessionId, replica: Option<Replica>, now: i64) {
        if keep.off() {
            return;
        }
        let mut entries = self.entries.borrow_mut();
        if let Some(e) = entries.get(sid) {
            if e.revoked_here && keep.fresh(e, now) {
                return;
            }
        }
        make_room(keep, &mut entries, sid, now);
        entries.insert(
            sid.clone(),
            Entry {
                replica,
                at: now,
                revoked_here: false,
            },
        );
    }

    /// This isolate revoked `sid` at `now`: its answer is gone at once.
    pub(crate) fn forget(&self, keep: Keep, sid: &SessionId, now: i64) {
        if keep.off() {
            return;
        }
        let mut entries = self.entries.borrow_mut();
        make_room(keep, &mut entries, sid, now);
        entries.insert(
            sid.clone(),
            Entry {
                replica: None,
                at: now,
                revoked_here: true,
            },
        );
    }

    /// This isolate changed `sid` (a rotation, a phone binding): the next
    /// request reads the replica, which the authority wrote first.
    pub(crate) fn changed(&self, sid: &SessionId) {
        self.entries.borrow_mut().remove(sid);
    }

    /// This isolate revoked every session of `openid` at `now`: the ones
    /// it remembers are gone at once, as [`ReplicaCache::forget`] does.
    pub(crate) fn forget_user(&self, openid: &OpenId, now: i64) {
        for e in self.entries.borrow_mut().values_mut() {
            if e.replica.as_ref().is_some_and(|r| &r.openid == openid) {
                *e = Entry {
                    replica: None,
                    at: now,
                    revoked_here: true,
                };
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.borrow().len()
    }
}

/// Room for `sid`: when full, what has expired goes, then the oldest.
fn make_room(keep: Keep, entries: &mut HashMap<SessionId, Entry>, sid: &SessionId, now: i64) {
    if entries.len() < MAX_REPLICAS || entries.contains_key(sid) {
        return;
    }
    entries.retain(|_, e| keep.fresh(e, now));
    if entries.len() >= MAX_REPLICAS {
        let oldest = entries
            .iter()
            .min_by_key(|(_, e)| e.at)
            .map(|(k, _)| k.clone());
        if let Some(oldest) = oldest {
            entries.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_000_000;

    fn replica(openid: &str) -> Replica {
        Replica {
            openid: OpenId::new(openid),
            unionid: None,
            phone: None,
            expires_at: NOW + 3600,
            as_of: Some(NOW - 10),
        }
    }

    fn sid(s: &str) -> SessionId {
        SessionId::new(s)
    }

    #[test]
    fn a_live_replica_is_kept_its_seconds_and_no_longer() {
        let c = ReplicaCache::default();
        let k = Keep::secs(3);
        assert_eq!(c.get(k, &sid("s1"), NOW), None);
        c.put(k, &sid("s1"), Some(replica("o1")), NOW);
        for t in 0..3 {
            assert_eq!(
                c.get(k, &sid("s1"), NOW + t),
                Some(Some(replica("o1"))),
                "{t}"
            );
        }
        assert_eq!(c.get(k, &sid("s1"), NOW + 3), None);
        assert_eq!(c.get(k, &sid("s2"), NOW), None);
    }

    #[test]
    fn a_missing_replica_is_kept_no_longer_than_a_live_one_nor_a_second() {
        for secs in [1, 2, 5, MAX_REPLICA_CACHE_SECS] {
            let c = ReplicaCache::default();
            let k = Keep::secs(secs);
            c.put(k, &sid("s1"), None, NOW);
            assert_eq!(c.get(k, &sid("s1"), NOW), Some(None));
            assert_eq!(c.get(k, &sid("s1"), NOW + 1), None, "{secs}");
            assert!(k.negative() <= k.positive);
        }
    }

    #[test]
    fn zero_turns_it_off() {
        let c = ReplicaCache::default();
        let k = Keep::secs(0);
        c.put(k, &sid("s1"), Some(replica("o1")), NOW);
        c.forget(k, &sid("s1"), NOW);
        assert_eq!(c.get(k, &sid("s1"), NOW), None);
        assert_eq!(c.len(), 0);
        assert_eq!(kv_cache_ttl(0), None);
    }

    #[test]
    fn more_than_ten_seconds_is_ten() {
        assert_eq!(Keep::secs(3600), Keep::secs(10));
        assert_eq!(Keep::secs(3600).positive, 10);
    }

    #[test]
    fn kv_edge_cache_and_this_one_together_stay_within_sixty_seconds() {
        for secs in 1..=MAX_REPLICA_CACHE_SECS {
            let ttl = kv_cache_ttl(secs).unwrap();
            assert!(ttl >= KV_MIN_CACHE_TTL);
            assert!(ttl + secs <= 60, "{secs}");
        }
    }

    #[test]
    fn a_session_revoked_here_is_refused_at_once_and_a_late_read_cannot_revive_it() {
        let c = ReplicaCache::default();
        let k = Keep::secs(5);
        c.put(k, &sid("s1"), Some(replica("o1")), NOW);
        c.forget(k, &sid("s1"), NOW + 1);
        assert_eq!(c.get(k, &sid("s1"), NOW + 1), Some(None));
        // A read that started before the logout lands after it.
        c.put(k, &sid("s1"), Some(replica("o1")), NOW + 1);
        assert_eq!(c.get(k, &sid("s1"), NOW + 1), Some(None));
        // Afterwards the next read decides (KV, which the authority
        // already told).
        assert_eq!(c.get(k, &sid("s1"), NOW + 2), None);
        c.put(k, &sid("s1"), None, NOW + 2);
        assert_eq!(c.get(k, &sid("s1"), NOW + 2), Some(None));
    }

    #[test]
    fn a_user_revoked_here_loses_every_session_and_only_theirs() {
        let c = ReplicaCache::default();
        let k = Keep::secs(5);
        c.put(k, &sid("a1"), Some(replica("alice")), NOW);
        c.put(k, &sid("a2"), Some(replica("alice")), NOW);
        c.put(k, &sid("b1"), Some(replica("bob")), NOW);
        c.forget_user(&OpenId::new("alice"), NOW);
        assert_eq!(c.get(k, &sid("a1"), NOW), Some(None));
        assert_eq!(c.get(k, &sid("a2"), NOW), Some(None));
        c.put(k, &sid("a1"), Some(replica("alice")), NOW);
        assert_eq!(c.get(k, &sid("a1"), NOW), Some(None));
        assert_eq!(c.get(k, &sid("b1"), NOW), Some(Some(replica("bob"))));
    }

    #[test]
    fn a_replica_from_the_future_is_not_served() {
        let c = ReplicaCache::default();
        let k = Keep::secs(5);
        c.put(k, &sid("s1"), Some(replica("o1")), NOW);
        assert_eq!(c.get(k, &sid("s1"), NOW - 1), None);
    }

    #[test]
    fn bounded_expired_first_then_oldest() {
        let c = ReplicaCache::default();
        let k = Keep::secs(5);
        for i in 0..MAX_REPLICAS {
            c.put(k, &sid(&format!("s{i}")), Some(replica("o")), NOW);
        }
        assert_eq!(c.len(), MAX_REPLICAS);
        // One newer entry: the oldest goes, nothing else.
        c.put(k, &sid("new1"), Some(replica("o")), NOW + 1);
        assert_eq!(c.len(), MAX_REPLICAS);
        assert!(c.get(k, &sid("new1"), NOW + 1).is_some());
        // Replacing a known key makes no room.
        c.put(k, &sid("new1"), Some(replica("o")), NOW + 1);
        assert_eq!(c.len(), MAX_REPLICAS);
        // Once they expire, they all go at the next insertion.
        c.put(k, &sid("new2"), Some(replica("o")), NOW + 5);
        assert_eq!(c.len(), 2);
        assert!(c.get(k, &sid("new1"), NOW + 5).is_some());
        assert!(c.get(k, &sid("s0"), NOW + 5).is_none());
    }

    #[test]
    fn the_oldest_goes_when_nothing_has_expired() {
        let c = ReplicaCache::default();
        let k = Keep::secs(5);
        c.put(k, &sid("first"), Some(replica("o")), NOW);
        for i in 1..MAX_REPLICAS {
            c.put(k, &sid(&format!("s{i}")), Some(replica("o")), NOW + 1);
        }
        c.put(k, &sid("last"), Some(replica("o")), NOW + 2);
        assert_eq!(c.len(), MAX_REPLICAS);
        assert_eq!(c.get(k, &sid("first"), NOW + 2), None);
        assert!(c.get(k, &sid("s1"), NOW + 2).is_some());
        assert!(c.get(k, &sid("last"), NOW + 2).is_some());
    }

    #[test]
    fn a_session_changed_here_is_read_afresh_not_refused() {
        let c = ReplicaCache::default();
        let k = Keep::secs(5);
        c.put(k, &sid("s1"), Some(replica("o1")), NOW);
        c.changed(&sid("s1"));
        assert_eq!(c.get(k, &sid("s1"), NOW), None);
        let mut bound = replica("o1");
        bound.as_of = Some(NOW);
        c.put(k, &sid("s1"), Some(bound.clone()), NOW);
        assert_eq!(c.get(k, &sid("s1"), NOW), Some(Some(bound)));
    }
}
