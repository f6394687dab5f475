//! Reusing `X-WX-Identity` assertions within an isolate.
//!
//! Signing is the costliest step of a proxied request. The contract lets the
//! requests of one session share an assertion while it has more than half of
//! its life left, so an isolate keeps the assertions it made, keyed by
//! everything an assertion says and by the session it was made for:
//! - a phone bound since, or any other asserted field that changes, is
//!   another key, so a stale assertion is never served;
//! - another session of the same user is another key, so an assertion made
//!   for a session that has since been revoked is never served to another
//!   one (and a revoked session itself is refused by the proxy before an
//!   assertion is asked for).
//!
//! The cache is bounded ([`MAX_ASSERTIONS`]): when full, it forgets what may
//! no longer be reused, then the oldest. The clock is an argument; an
//! assertion issued "after" `now` (the clock went backwards) is not reused.

use std::cell::RefCell;
use std::collections::HashMap;

use super::identity::IDENTITY_TTL;
use crate::ids::{AppId, SessionId, Subject};

/// The most assertions one isolate keeps.
pub(crate) const MAX_ASSERTIONS: usize = 1024;

/// An assertion is reused for this many seconds after it was issued: while
/// it has more than half of its life left.
pub(crate) const REUSE_FOR: i64 = IDENTITY_TTL / 2;

/// Everything an assertion asserts (its `aud`, `appid` and subject: `sub`,
/// `unionid`, `phone`, `phone_country`), and the session it was made for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct AssertionKey {
    pub(crate) session: SessionId,
    pub(crate) audience: String,
    pub(crate) appid: AppId,
    pub(crate) subject: Subject,
}

struct Entry {
    token: String,
    issued_at: i64,
}

impl Entry {
    fn reusable(&self, now: i64) -> bool {
        self.issued_at <= now && now - self.issued_at < REUSE_FOR
    }
}

/// The assertions one isolate made, for its concurrent requests to share.
#[derive(Default)]
pub(crate) struct AssertionCache {
    entries: RefCell<HashMap<AssertionKey, Entry>>,
}

impl AssertionCache {
    /// The assertion made for `key`, while it may still be reused at `now`.
    pub(crate) fn get(&self, key: &AssertionKey, now: i64) -> Option<String> {
        self.entries
            .borrow()
            .get(key)
            .filter(|e| e.reusable(now))
            .map(|e| e.token.clone())
    }

    /// Keeps `token`, issued at `issued_at`, for `key`.
    pub(crate) fn put(&self, key: AssertionKey, token: String, issued_at: i64) {
        let mut entries = self.entries.borrow_mut();
        if entries.len() >= MAX_ASSERTIONS && !entries.contains_key(&key) {
            entries.retain(|_, e| e.reusable(issued_at));
            if entries.len() >= MAX_ASSERTIONS {
                let oldest = entries
                    .iter()
                    .min_by_key(|(_, e)| e.issued_at)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    entries.remove(&oldest);
                }
            }
        }
        entries.insert(key, Entry { token, issued_at });
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.borrow().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{OpenId, UnionId};
    use crate::phone::Phone;

    const NOW: i64 = 1_764_000_000;

    fn key(session: &str, openid: &str) -> AssertionKey {
        AssertionKey {
            session: SessionId::new(session),
            audience: "https://api.example.com".into(),
            appid: AppId::new("wxd930ea5d5a258f4f"),
            subject: Subject::new(OpenId::new(openid)),
        }
    }

    #[test]
    fn reused_until_half_its_life_is_gone() {
        let c = AssertionCache::default();
        let k = key("s1", "o1");
        assert_eq!(c.get(&k, NOW), None);
        c.put(k.clone(), "t1".into(), NOW);
        assert_eq!(c.get(&k, NOW).as_deref(), Some("t1"));
        assert_eq!(c.get(&k, NOW + REUSE_FOR - 1).as_deref(), Some("t1"));
        assert_eq!(c.get(&k, NOW + REUSE_FOR), None);
        assert_eq!(c.get(&k, NOW + IDENTITY_TTL + 1), None);
        assert_eq!(REUSE_FOR * 2, IDENTITY_TTL);
    }

    #[test]
    fn a_clock_gone_backwards_is_not_served_a_later_assertion() {
        let c = AssertionCache::default();
        let k = key("s1", "o1");
        c.put(k.clone(), "t1".into(), NOW + 500);
        assert_eq!(c.get(&k, NOW), None);
        assert_eq!(c.get(&k, NOW + 499), None);
        assert_eq!(c.get(&k, NOW + 500).as_deref(), Some("t1"));
    }

    #[test]
    fn every_field_is_part_of_the_key() {
        let c = AssertionCache::default();
        let base = key("s1", "o1");
        c.put(base.clone(), "t".into(), NOW);
        let subject = |f: &dyn Fn(&mut Subject)| {
            let mut k = base.clone();
            f(&mut k.subject);
            k
        };
        let variants: Vec<AssertionKey> = vec![
            AssertionKey {
                session: SessionId::new("s2"),
                ..base.clone()
            },
            AssertionKey {
                audience: "https://other.example.com".into(),
                ..base.clone()
            },
            AssertionKey {
                appid: AppId::new("wx0000000000000000"),
                ..base.clone()
            },
            subject(&|s| s.openid = OpenId::new("o2")),
            subject(&|s| s.unionid = Some(UnionId::new("u"))),
            subject(&|s| s.phone = Some(Phone::for_tests("13800138000", "13800138000", "86"))),
            // The same number in another country.
            subject(&|s| s.phone = Some(Phone::for_tests("13800138000", "13800138000", "1"))),
        ];
        for v in variants {
            assert_eq!(c.get(&v, NOW), None, "{v:?}");
        }
        assert_eq!(c.get(&base, NOW).as_deref(), Some("t"));
    }

    #[test]
    fn the_bound_holds_forgetting_the_stale_then_the_oldest() {
        let c = AssertionCache::default();
        // Half of the room goes to assertions that will be stale.
        for i in 0..MAX_ASSERTIONS / 2 {
            c.put(key(&format!("old{i}"), "o"), format!("t{i}"), NOW);
        }
        let later = NOW + REUSE_FOR;
        for i in 0..MAX_ASSERTIONS / 2 {
            c.put(
                key(&format!("new{i}"), "o"),
                format!("n{i}"),
                later + i as i64 % 5,
            );
        }
        assert_eq!(c.len(), MAX_ASSERTIONS);
        // Full: the stale ones go first.
        c.put(key("one-more", "o"), "x".into(), later + 5);
        assert_eq!(c.len(), MAX_ASSERTIONS / 2 + 1);
        assert_eq!(c.get(&key("new0", "o"), later + 5).as_deref(), Some("n0"));
        // Full of reusable ones: the oldest goes.
        for i in 0..MAX_ASSERTIONS {
            c.put(key(&format!("more{i}"), "o"), "m".into(), later + 6);
            assert!(c.len() <= MAX_ASSERTIONS);
        }
        assert_eq!(c.len(), MAX_ASSERTIONS);
        assert_eq!(c.get(&key("more0", "o"), later + 6).as_deref(), Some("m"));
        assert_eq!(c.get(&key("new0", "o"), later + 6), None, "oldest went");
        // Replacing a key does not evict another.
        c.put(key("more0", "o"), "m2".into(), later + 7);
        assert_eq!(c.len(), MAX_ASSERTIONS);
        assert_eq!(c.get(&key("more1", "o"), later + 7).as_deref(), Some("m"));
    }
}
