use super::*;
use crate::authority::protocol::{
    BindDenied, BindPhone, CheckSession, Login, Logout, NoLiveSession, ReadUser, Refresh,
    RefreshDenied, Refreshed, ReplaceKey, RevokeAll, SessionEnded, SignLatest, UserSummary,
};
use crate::secret::login_state_signature;

const T0: i64 = 1_764_000_000;
const RULES: Rules = Rules {
    refresh_ttl: 3_600,
    max_age: 86_400,
    grace: 10,
};

fn user() -> OpenId {
    OpenId::new("oUser1")
}

fn sid(n: u8) -> SessionId {
    SessionId::new(format!("sid{n}"))
}

fn key() -> SessionKey {
    SessionKey::from_base64("tiihtNczf5v6AKRyjwEUhQ==").expect("16 bytes")
}

fn h(s: &str) -> RefreshHash {
    RefreshHash::new(s)
}

fn phone() -> Phone {
    Phone::for_tests("13800138000", "13800138000", "86")
}

/// Applies `step` at `now` for [`user`], the allowlist off.
fn run<S: Step>(st: &mut UserState, step: S, now: i64) -> (S::Reply, Vec<Effect>) {
    run_listed(st, step, now, None)
}

fn run_listed<S: Step>(
    st: &mut UserState,
    step: S,
    now: i64,
    phone_listed: Option<bool>,
) -> (S::Reply, Vec<Effect>) {
    let openid = user();
    let at = Context {
        openid: &openid,
        now,
        rules: RULES,
        phone_listed,
    };
    st.apply(step, &at)
}

fn login(n: u8, hash: &str) -> Login {
    Login {
        sid: sid(n),
        session_key: key(),
        unionid: Some("u1".into()),
        refresh_hash: h(hash),
        ip: Some("203.0.113.7".into()),
    }
}

fn refresh(n: u8, presented: &str, next: &str) -> Refresh {
    Refresh {
        sid: sid(n),
        presented_hash: h(presented),
        next_hash: h(next),
        next_sealed: format!("sealed:{next}"),
    }
}

fn bind(n: u8) -> BindPhone {
    BindPhone {
        sid: sid(n),
        phone: phone(),
    }
}

/// A state with session 1 logged in at T0 with hash "h0".
fn one_session() -> UserState {
    let mut st = UserState::default();
    run(&mut st, login(1, "h0"), T0);
    st
}

/// Every step on a session that is missing, revoked or expired: none
/// brings it back, none rotates it, none writes its replica.
#[test]
fn nothing_revives_a_missing_revoked_or_expired_session() {
    let setups: Vec<(&str, UserState, i64)> = vec![
        ("missing", UserState::default(), T0 + 1),
        (
            "revoked",
            {
                let mut st = one_session();
                run(&mut st, Logout { sid: sid(1) }, T0 + 1);
                st
            },
            T0 + 2,
        ),
        ("expired", one_session(), T0 + 3_600),
    ];
    for (name, st, now) in setups {
        let check = |what: &str, st: &UserState, effects: &[Effect]| {
            assert!(
                !effects.iter().any(|e| matches!(e, Effect::Put(..))),
                "{name}: {what} wrote a replica"
            );
            if let Some(s) = st.sessions.get(&sid(1)) {
                assert_eq!(s.refresh_hash, h("h0"), "{name}: {what} rotated");
                assert!(!s.is_live(now), "{name}: {what} revived");
            }
        };
        let mut s = st.clone();
        let (r, e) = run(&mut s, refresh(1, "h0", "h1"), now);
        assert_eq!(r, Err(RefreshDenied::InvalidRefreshToken), "{name}");
        check("refresh", &s, &e);
        let mut s = st.clone();
        let (r, e) = run(&mut s, bind(1), now);
        assert_eq!(r, Err(BindDenied::SessionRevoked), "{name}");
        check("bind", &s, &e);
        let mut s = st.clone();
        let (r, e) = run(&mut s, CheckSession { sid: sid(1) }, now);
        assert_eq!(r, Err(SessionEnded), "{name}");
        check("check", &s, &e);
        let mut s = st.clone();
        let ((), e) = run(&mut s, DecryptFailed { sid: sid(1) }, now);
        check("decrypt failure", &s, &e);
        let mut s = st.clone();
        let ((), e) = run(&mut s, Logout { sid: sid(1) }, now);
        check("logout", &s, &e);
    }
}

#[test]
fn login_opens_a_session_and_records_the_user() {
    let mut st = UserState::default();
    let (view, effects) = run(&mut st, login(1, "h0"), T0);
    assert_eq!(view.issued_at, T0);
    assert_eq!(view.expires_at, T0 + 3_600);
    assert_eq!(effects.len(), 1);
    assert!(matches!(&effects[0], Effect::Put(s, r) if *s == sid(1) && r.expires_at == T0 + 3_600));
    let u = st.user.as_ref().expect("user");
    assert_eq!((u.login_count, u.first_login_at), (1, T0));
    run(&mut st, login(2, "x0"), T0 + 5);
    let u = st.user.as_ref().expect("user");
    assert_eq!(
        (u.login_count, u.first_login_at, u.last_login_at),
        (2, T0, T0 + 5)
    );
}

#[test]
fn rotation_grace_and_reuse() {
    let mut st = one_session();
    let (r, _) = run(&mut st, refresh(1, "h0", "h1"), T0 + 100);
    assert!(matches!(r, Ok(Refreshed::Rotated(_))), "{r:?}");
    // The previous token within the grace: the sealed pair, no rotation.
    for dt in [0, 10] {
        let (r, effects) = run(&mut st, refresh(1, "h0", "zz"), T0 + 100 + dt);
        let Ok(Refreshed::Repeated { session, sealed }) = r else {
            panic!("{r:?}")
        };
        assert_eq!(sealed, "sealed:h1");
        assert_eq!(session.issued_at, T0 + 100);
        assert!(effects.is_empty());
        assert_eq!(st.sessions[&sid(1)].refresh_hash, h("h1"));
    }
    // After the grace: reuse, revoked, replica deleted.
    let (r, effects) = run(&mut st, refresh(1, "h0", "zz"), T0 + 111);
    assert_eq!(r, Err(RefreshDenied::RefreshReused));
    assert_eq!(effects, vec![Effect::Delete(sid(1))]);
    assert_eq!(st.sessions[&sid(1)].revoked_at, Some(T0 + 111));
    // And the current token is dead too.
    let (r, _) = run(&mut st, refresh(1, "h1", "h2"), T0 + 112);
    assert_eq!(r, Err(RefreshDenied::InvalidRefreshToken));
}

#[test]
fn an_unknown_hash_is_invalid_and_harmless() {
    let mut st = one_session();
    let (r, effects) = run(&mut st, refresh(1, "nope", "h1"), T0 + 1);
    assert_eq!(r, Err(RefreshDenied::InvalidRefreshToken));
    assert!(effects.is_empty());
    assert!(st.sessions[&sid(1)].is_live(T0 + 1));
    assert_eq!(st.sessions[&sid(1)].refresh_hash, h("h0"));
}

#[test]
fn refreshes_slide_the_expiry_up_to_the_max_age() {
    let mut st = one_session();
    let mut hash = "h0".to_string();
    let mut t = T0;
    for i in 0..60 {
        t += 3_000;
        let next = format!("h{}", i + 1);
        let (r, _) = run(&mut st, refresh(1, &hash, &next), t);
        if t >= T0 + 86_400 {
            assert_eq!(r, Err(RefreshDenied::InvalidRefreshToken), "at {t}");
            break;
        }
        let Ok(Refreshed::Rotated(view)) = r else {
            panic!("at {t}: {r:?}")
        };
        assert_eq!(view.expires_at, (t + 3_600).min(T0 + 86_400));
        hash = next;
    }
}

#[test]
fn revoke_all_ends_every_live_session_and_counts_them() {
    let mut st = one_session();
    run(&mut st, login(2, "x0"), T0 + 1);
    run(&mut st, login(3, "y0"), T0 + 2);
    run(&mut st, Logout { sid: sid(3) }, T0 + 3);
    let (revoked, effects) = run(&mut st, RevokeAll, T0 + 4);
    assert_eq!(revoked, 2);
    assert_eq!(
        effects,
        vec![Effect::Delete(sid(1)), Effect::Delete(sid(2))]
    );
    let (summary, _) = run(&mut st, ReadUser, T0 + 5);
    assert!(matches!(
        summary,
        UserSummary {
            live_sessions: 0,
            user: Some(_)
        }
    ));
    // A new login works.
    let (view, _) = run(&mut st, login(4, "z0"), T0 + 6);
    assert_eq!(view.issued_at, T0 + 6);
}

#[test]
fn binding_records_the_phone_without_rotating_and_later_refreshes_carry_it() {
    let mut st = one_session();
    run(&mut st, login(2, "x0"), T0 + 1);
    let (r, effects) = run(&mut st, bind(1), T0 + 2);
    let bound = r.expect("bound");
    assert_eq!(bound.phone, phone());
    assert_eq!(bound.session.phone, Some(phone()));
    assert_eq!(bound.session.issued_at, T0, "the pair is the login's");
    assert!(matches!(&effects[0], Effect::Put(_, rep) if rep.phone == Some(phone())));
    assert_eq!(st.user_phone(), Some(&phone()));
    let s = &st.sessions[&sid(1)];
    assert_eq!(s.refresh_hash, h("h0"), "not rotated");
    assert_eq!((s.prev_hash.as_ref(), s.retired.len()), (None, 0));
    // Bound again (a double tap): still the login's token, which refreshes.
    let (r, _) = run(&mut st, bind(1), T0 + 3);
    assert!(r.is_ok());
    let (r, _) = run(&mut st, refresh(1, "h0", "h1"), T0 + 100);
    let Ok(Refreshed::Rotated(view)) = r else {
        panic!("{r:?}")
    };
    assert_eq!(view.phone, Some(phone()));
    // The other device gets it at its next refresh...
    let (r, _) = run(&mut st, refresh(2, "x0", "x1"), T0 + 3);
    let Ok(Refreshed::Rotated(view)) = r else {
        panic!("{r:?}")
    };
    assert_eq!(view.phone, Some(phone()));
    // ...unless the allowlist dropped it.
    let (r, _) = run_listed(&mut st, refresh(2, "x1", "x2"), T0 + 4, Some(false));
    let Ok(Refreshed::Rotated(view)) = r else {
        panic!("{r:?}")
    };
    assert_eq!(view.phone, None);
}

#[test]
fn an_unlisted_phone_is_refused_before_anything_changes() {
    let mut st = one_session();
    let (r, effects) = run_listed(&mut st, bind(1), T0 + 1, Some(false));
    assert_eq!(r, Err(BindDenied::NotInternalUser));
    assert!(effects.is_empty());
    assert_eq!(st.sessions[&sid(1)].refresh_hash, h("h0"));
    assert_eq!(st.user_phone(), None);
}

#[test]
fn five_failed_decryptions_revoke_the_session() {
    let mut st = one_session();
    for i in 1..MAX_FAILED_DECRYPTS {
        let ((), effects) = run(&mut st, DecryptFailed { sid: sid(1) }, T0 + i64::from(i));
        assert!(effects.is_empty());
        assert!(st.sessions[&sid(1)].is_live(T0 + 10));
    }
    let ((), effects) = run(&mut st, DecryptFailed { sid: sid(1) }, T0 + 9);
    assert_eq!(effects, vec![Effect::Delete(sid(1))]);
    let (r, _) = run(&mut st, CheckSession { sid: sid(1) }, T0 + 10);
    assert_eq!(r, Err(SessionEnded));
}

#[test]
fn logins_beyond_the_cap_revoke_the_oldest() {
    let mut st = UserState::default();
    for i in 0..=MAX_SESSIONS {
        let n = u8::try_from(i).expect("small");
        let (_, effects) = run(&mut st, login(n, "h"), T0 + i64::from(n));
        if i == MAX_SESSIONS {
            assert_eq!(effects.last(), Some(&Effect::Delete(sid(0))));
        }
    }
    let live = st.sessions.values().filter(|s| s.is_live(T0 + 100)).count();
    assert_eq!(live, MAX_SESSIONS);
}

#[test]
fn expired_sessions_are_forgotten_revoked_ones_only_at_their_end() {
    let mut st = one_session();
    run(&mut st, login(2, "x0"), T0 + 10);
    run(&mut st, Logout { sid: sid(2) }, T0 + 20);
    assert_eq!(st.next_expiry(), Some(T0 + 3_600));
    let effects = st.prune(T0 + 3_600);
    assert_eq!(effects, vec![Effect::Delete(sid(1))]);
    assert!(
        st.sessions.contains_key(&sid(2)),
        "revoked, kept to its end"
    );
    assert!(st.prune(T0 + 3_610).is_empty());
    assert!(st.sessions.is_empty());
}

/// KV accepted everything the outbox holds.
fn drained(st: &mut UserState) {
    for (sid, entry) in st.outbox.entries() {
        st.outbox.accepted(&sid, &entry);
    }
    assert!(st.outbox.is_empty());
}

#[test]
fn the_alarm_is_a_second_after_the_first_expiry_never_in_the_past() {
    let mut st = one_session();
    drained(&mut st);
    assert_eq!(st.alarm_ms(T0), Some((T0 + 3_601) * 1000));
    run(&mut st, login(2, "x0"), T0 + 10);
    drained(&mut st);
    assert_eq!(st.alarm_ms(T0 + 10), Some((T0 + 3_601) * 1000));
    // Already past (the alarm ran late): a second from now.
    assert_eq!(st.alarm_ms(T0 + 5_000), Some((T0 + 5_001) * 1000));
    assert_eq!(UserState::default().alarm_ms(T0), None);
}

#[test]
fn the_state_round_trips_through_json_without_the_key_in_clear_view() {
    let st = one_session();
    let text = serde_json::to_string(&st).expect("json");
    let back: UserState = serde_json::from_str(&text).expect("parses");
    assert_eq!(back.sessions[&sid(1)].refresh_hash, h("h0"));
    assert_eq!(back.sessions[&sid(1)].session_key.bytes(), key().bytes());
    // The hashes are stored as bare strings, as before they had a type.
    assert!(text.contains(r#""refresh_hash":"h0""#), "{text}");
    // Nothing the authority answers carries the key.
    let mut st = st;
    let (r, _) = run(&mut st, CheckSession { sid: sid(1) }, T0 + 1);
    let shown = serde_json::to_string(&r.expect("live")).expect("json");
    assert!(!shown.contains("tiihtN"), "{shown}");
}

#[test]
fn the_outbox_keeps_the_latest_change_per_session() {
    let mut st = one_session();
    assert_eq!(st.outbox.pending.len(), 1);
    assert!(matches!(st.outbox.pending[&sid(1)], Pending::Put(_)));
    let (r, _) = run(&mut st, refresh(1, "h0", "h1"), T0 + 5);
    assert!(r.is_ok());
    let Pending::Put(replica) = st.outbox.pending[&sid(1)].clone() else {
        panic!("{:?}", st.outbox)
    };
    assert_eq!(
        replica.expires_at,
        T0 + 5 + 3_600,
        "the latest replica wins"
    );
    run(&mut st, Logout { sid: sid(1) }, T0 + 6);
    assert_eq!(st.outbox.pending[&sid(1)], Pending::Delete);
    assert_eq!(st.outbox.pending.len(), 1);
    // A put accepted after a newer delete was queued removes nothing.
    let stale = Pending::Put(replica);
    st.outbox.accepted(&sid(1), &stale);
    assert_eq!(st.outbox.pending[&sid(1)], Pending::Delete);
}

#[test]
fn a_refused_outbox_retries_with_a_doubling_capped_backoff_and_sets_the_alarm() {
    let mut st = one_session();
    // Never tried (an object stopped before its KV write): due now, and
    // the alarm a second from now.
    assert!(st.outbox.due(T0));
    assert_eq!(st.alarm_ms(T0), Some((T0 + 1) * 1000));
    let mut waits = Vec::new();
    for _ in 0..12 {
        st.outbox.failed(T0);
        waits.push(st.outbox.retry_at.expect("scheduled") - T0);
    }
    assert_eq!(waits, vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
    assert!(!st.outbox.due(T0 + 299));
    assert!(st.outbox.due(T0 + 300));
    assert_eq!(st.alarm_ms(T0), Some((T0 + 300) * 1000));
    drained(&mut st);
    assert_eq!((st.outbox.failures, st.outbox.retry_at), (0, None));
    assert_eq!(st.alarm_ms(T0), Some((T0 + 3_601) * 1000));
}

#[test]
fn pruning_queues_deletes_and_never_drops_a_revocations() {
    let mut st = one_session();
    run(&mut st, login(2, "x0"), T0 + 10);
    drained(&mut st);
    run(&mut st, Logout { sid: sid(2) }, T0 + 20);
    // Session 1 expires; session 2 (revoked) too, its delete not yet
    // accepted.
    st.prune(T0 + 3_610);
    assert!(st.sessions.is_empty());
    assert_eq!(st.outbox.pending[&sid(1)], Pending::Delete);
    assert_eq!(st.outbox.pending[&sid(2)], Pending::Delete);
}

#[test]
fn a_state_saved_before_the_outbox_still_loads_and_an_empty_outbox_is_not_written() {
    let old = r#"{"user":{"openid":"oUser1","first_login_at":1,"last_login_at":1,"login_count":1},"sessions":{}}"#;
    let st: UserState = serde_json::from_str(old).expect("loads");
    assert!(st.outbox.is_empty());
    assert_eq!(serde_json::to_string(&st).expect("json"), old);
    let mut st = one_session();
    let text = serde_json::to_string(&st).expect("json");
    assert!(
        text.contains(r#""outbox":{"pending":{"sid1":{"put":"#),
        "{text}"
    );
    let back: UserState = serde_json::from_str(&text).expect("parses");
    assert_eq!(back.outbox, st.outbox);
    drained(&mut st);
    assert!(!serde_json::to_string(&st).expect("json").contains("outbox"));
    assert!(UserState::default().is_empty());
}

fn other_key() -> SessionKey {
    SessionKey::from_base64("o0q0otL8aEzpcZL/FT9WsQ==").expect("16 bytes")
}

fn replace(n: u8) -> ReplaceKey {
    ReplaceKey {
        sid: sid(n),
        session_key: other_key(),
    }
}

/// The newest key is the one set last: a later login's, until an older
/// session's key is replaced; of two set at the same second, the later
/// created's. Expired, revoked and unknown sessions neither sign nor
/// take a key, and a replacement touches nothing the replica shows.
#[test]
fn the_newest_key_signs_and_a_replacement_makes_its_session_the_newest() {
    let mut st = UserState::default();
    let (none, e) = run(
        &mut st,
        SignLatest {
            data: String::new(),
        },
        T0,
    );
    assert_eq!(none, Err(NoLiveSession));
    assert!(e.is_empty());
    run(&mut st, login(1, "a"), T0);
    run(&mut st, login(2, "b"), T0 + 5);
    let signed = |st: &mut UserState, now| {
        run(st, SignLatest { data: "d".into() }, now)
            .0
            .expect("a live session")
    };
    let first = signed(&mut st, T0 + 6);
    assert_eq!(first.sid, sid(2));
    assert_eq!(first.signature, login_state_signature(&key(), b"d"));
    // Session 1's key replaced: now the newest, signing with its new key.
    let (replaced, effects) = run(&mut st, replace(1), T0 + 7);
    assert_eq!(replaced, Ok(()));
    assert!(effects.is_empty(), "the replica carries no key");
    let s1 = &st.sessions[&sid(1)];
    assert_eq!((s1.key_at(), s1.created_at), (T0 + 7, T0));
    assert_eq!(s1.session_key.to_base64(), other_key().to_base64());
    let after = signed(&mut st, T0 + 8);
    assert_eq!(after.sid, sid(1));
    assert_eq!(after.signature, login_state_signature(&other_key(), b"d"));
    assert_ne!(after.signature, first.signature);
    let order: Vec<SessionId> = st
        .live_keys_newest_first(T0 + 8)
        .into_iter()
        .map(|(sid, _)| sid.clone())
        .collect();
    assert_eq!(order, [sid(1), sid(2)]);
    // Session 1 logged out: session 2 signs again.
    run(&mut st, Logout { sid: sid(1) }, T0 + 9);
    assert_eq!(signed(&mut st, T0 + 9).sid, sid(2));
    assert_eq!(run(&mut st, replace(1), T0 + 10).0, Err(SessionEnded));
    assert_eq!(run(&mut st, replace(7), T0 + 10).0, Err(SessionEnded));
    // Two keys set at the same second: the later created signs.
    run(&mut st, login(3, "c"), T0 + 20);
    assert_eq!(run(&mut st, replace(2), T0 + 20).0, Ok(()));
    assert_eq!(signed(&mut st, T0 + 21).sid, sid(3));
    // Past every expiry, nothing signs.
    let (none, _) = run(
        &mut st,
        SignLatest {
            data: String::new(),
        },
        T0 + 90_000,
    );
    assert_eq!(none, Err(NoLiveSession));
}

/// A state saved before keys were replaced loads with each key set at
/// its login, and a session whose key was never replaced is saved as
/// before.
#[test]
fn a_session_saved_before_key_at_has_its_login_key() {
    let mut st = one_session();
    drained(&mut st);
    let text = serde_json::to_string(&st).expect("json");
    assert!(!text.contains("key_replaced_at"), "{text}");
    let back: UserState = serde_json::from_str(&text).expect("loads");
    let s = &back.sessions[&sid(1)];
    assert_eq!(s.key_at(), s.created_at);
    assert_eq!(run(&mut st, replace(1), T0 + 3).0, Ok(()));
    let text = serde_json::to_string(&st).expect("json");
    assert!(text.contains(r#""key_replaced_at":1764000003"#), "{text}");
}
