//! Concurrent requests in one isolate, forced to interleave.

use super::*;

/// KV with latency: every operation lets other requests run first, so
/// concurrent requests interleave between reading and writing.
struct SlowStore<'a>(&'a MemoryStore);

/// `w`'s deployment, but over the slow KV.
fn slow_edge<'a>(
    w: &'a World,
    slow: &'a SlowStore<'a>,
    now: i64,
) -> Edge<'a, SlowStore<'a>, Scripted, OsRandom> {
    w.store.now.set(now);
    Edge {
        cfg: &w.cfg,
        store: slow,
        wechat: &w.wx,
        rng: &w.rng,
        isolate: &w.isolate,
        now,
    }
}

impl Store for SlowStore<'_> {
    async fn get(&self, key: &str) -> Result<Option<String>, crate::store::StoreError> {
        YieldOnce(false).await;
        self.0.get(key).await
    }
    async fn put(
        &self,
        key: &str,
        value: &str,
        ttl: Option<u64>,
    ) -> Result<(), crate::store::StoreError> {
        YieldOnce(false).await;
        self.0.put(key, value, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<(), crate::store::StoreError> {
        YieldOnce(false).await;
        self.0.delete(key).await
    }
}

#[test]
fn concurrent_refreshes_in_one_isolate_get_the_same_new_token() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let sid = sid_of(&r.refresh_token);
    let slow = SlowStore(&w.store);
    let edge = slow_edge(&w, &slow, NOW + 5);
    let (a, b) = block_on(async {
        futures_util::join!(
            edge.refresh(&r.refresh_token),
            edge.refresh(&r.refresh_token)
        )
    });
    let (a, b) = (a.expect("first"), b.expect("second"));
    assert_eq!(a.refresh_token, b.refresh_token, "one rotation, shared");
    let s = w.session(&sid).expect("session");
    assert_eq!(s.refresh_hash, hash_of(&a.refresh_token));
    assert_eq!(
        s.prev_hash.as_deref(),
        Some(hash_of(&r.refresh_token).as_str())
    );
    assert!(s.retired.is_empty());
    assert!(w.isolate.sessions.is_idle(), "lock released");
    assert!(w.refresh(NOW + 6, &a.refresh_token).is_ok());
}

#[test]
fn concurrent_phone_bindings_in_one_isolate_fetch_the_wechat_token_once() {
    let (w, r) = code_world();
    let slow = SlowStore(&w.store);
    let edge = slow_edge(&w, &slow, NOW + 5);
    w.reply(STABLE_T1);
    w.reply(PHONE_REPLY);
    w.reply(PHONE_REPLY);
    let auth = bearer_of(&r);
    let (a, b) = block_on(async {
        futures_util::join!(
            edge.bind_phone(Some(&auth), PhoneRequest::Code("c1")),
            edge.bind_phone(Some(&auth), PhoneRequest::Code("c2"))
        )
    });
    assert!(a.expect("first").phone_bound);
    assert!(b.expect("second").phone_bound);
    let urls: Vec<String> = (1..w.sent_len()).map(|i| w.sent_url(i)).collect();
    let stable = urls
        .iter()
        .filter(|u| u.ends_with("/cgi-bin/stable_token"))
        .count();
    assert_eq!(stable, 1, "{urls:?}");
    let phone_url = format!("{API}/wxa/business/getuserphonenumber?access_token=T1");
    assert_eq!(
        urls.iter().filter(|u| **u == phone_url).count(),
        2,
        "{urls:?}"
    );
}

#[test]
fn the_refresh_lock_is_released_however_refresh_ends() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let r2 = w.refresh(NOW + 1, &r.refresh_token).expect("rotates");
    assert!(w.isolate.sessions.is_idle());
    let wrong = format!("{}.{}", sid_of(&r.refresh_token), B64URL.encode([9u8; 32]));
    assert_eq!(
        w.refresh(NOW + 2, &wrong),
        Err(ApiError::InvalidRefreshToken)
    );
    assert!(w.isolate.sessions.is_idle());
    w.store.fail.set(true);
    assert_eq!(
        w.refresh(NOW + 3, &r2.refresh_token),
        Err(ApiError::Internal)
    );
    assert!(w.isolate.sessions.is_idle());
    w.store.fail.set(false);
    assert_eq!(
        w.refresh(NOW + 100, &r.refresh_token),
        Err(ApiError::RefreshReused)
    );
    assert!(w.isolate.sessions.is_idle());
}

#[test]
fn a_logout_while_a_phone_binding_waits_on_wechat_is_not_undone() {
    let (w, r) = code_world();
    let sid = sid_of(&r.refresh_token);
    let slow = SlowStore(&w.store);
    let edge = slow_edge(&w, &slow, NOW + 5);
    w.reply(STABLE_T1);
    w.reply(PHONE_REPLY);
    let auth = bearer_of(&r);
    let (bound, out) = block_on(async {
        futures_util::join!(
            edge.bind_phone(Some(&auth), PhoneRequest::Code("c1")),
            edge.logout(Some(&auth))
        )
    });
    assert_eq!(out, Ok(()));
    assert_eq!(bound.map(|_| ()), Err(ApiError::SessionRevoked));
    assert!(
        w.session(&sid).is_none(),
        "the logged-out session came back"
    );
}
