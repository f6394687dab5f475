//! Races, forced: every KV operation, authority call and authority storage
//! access gives way to the other futures of a join (see `MemoryStore`,
//! `MemoryAuthority`), and each test shifts one side by 0..N extra yields
//! so the two requests meet at every point of each other's path.

use std::cell::Cell;

use super::*;
use crate::testkit::YieldOnce;

/// How many starting offsets each race is run with.
const SHIFTS: usize = 24;

async fn after(yields: usize) {
    for _ in 0..yields {
        YieldOnce(false).await;
    }
}

/// The session is dead for good: its authority holds it revoked, its
/// replica is gone, and no token of `chain` refreshes.
fn assert_dead(w: &World, sid: &SessionId, chain: &[String], now: i64, why: &str) {
    assert!(w.is_revoked(sid), "{why}: not revoked");
    assert!(w.replica(sid).is_none(), "{why}: replica still in KV");
    for t in chain {
        assert!(w.refresh(now, t).is_err(), "{why}: a refresh came back");
    }
}

#[test]
fn logout_racing_a_stolen_token_refresh_loop_always_ends_the_chain() {
    for shift in 0..SHIFTS {
        for logout_first in [false, true] {
            let w = World::new();
            let r = w.login_at(NOW, GOOD);
            let sid = sid_of(&r.refresh_token);
            let victim = bearer_of(&r);
            let edge = w.at(NOW + 1);
            let logged_out = Cell::new(false);
            let chain = std::cell::RefCell::new(vec![r.refresh_token.clone()]);
            let after_logout_wins = Cell::new(0);
            let thief = async {
                if logout_first {
                    after(shift).await;
                }
                for _ in 0..8 {
                    let current = chain.borrow().last().cloned().expect("a token");
                    let done_before = logged_out.get();
                    if let Ok(next) = edge.refresh(&current, None).await {
                        if done_before {
                            after_logout_wins.set(after_logout_wins.get() + 1);
                        }
                        chain.borrow_mut().push(next.refresh_token);
                    }
                }
            };
            let logout = async {
                if !logout_first {
                    after(shift).await;
                }
                let out = edge.logout(Some(&victim)).await;
                logged_out.set(true);
                out
            };
            let ((), out) = block_on(async { futures_util::join!(thief, logout) });
            assert_eq!(out, Ok(()));
            let why = format!("shift {shift}, logout first {logout_first}");
            assert_eq!(
                after_logout_wins.get(),
                0,
                "{why}: a refresh won after logout"
            );
            assert_dead(&w, &sid, &chain.borrow(), NOW + 2, &why);
        }
    }
}

#[test]
fn reuse_revocation_racing_the_victims_refresh_leaves_the_session_dead() {
    for shift in 0..SHIFTS {
        let w = World::new();
        let r1 = w.login_at(NOW, GOOD);
        let sid = sid_of(&r1.refresh_token);
        let r2 = w
            .refresh(NOW + 1, &r1.refresh_token)
            .expect("victim rotates");
        // Past the grace, the thief presents the stolen r1 while the victim
        // refreshes r2.
        let edge = w.at(NOW + 1 + REFRESH_GRACE + 1);
        let (thief, victim) = block_on(async {
            futures_util::join!(edge.refresh(&r1.refresh_token, None), async {
                after(shift).await;
                edge.refresh(&r2.refresh_token, None).await
            })
        });
        assert_eq!(thief, Err(ApiError::RefreshReused), "shift {shift}");
        let mut chain = vec![r1.refresh_token.clone(), r2.refresh_token.clone()];
        chain.extend(victim.ok().map(|v| v.refresh_token));
        assert_dead(&w, &sid, &chain, NOW + 100, &format!("shift {shift}"));
    }
}

#[test]
fn admin_revoke_racing_refreshes_leaves_every_session_dead() {
    for shift in 0..SHIFTS {
        let mut cfg = test_config();
        cfg.admin_token = Some(crate::secret::AdminToken::new(ADMIN));
        let w = World::with(cfg);
        let a = w.login_at(NOW, GOOD);
        let b = w.login_at(NOW + 1, GOOD);
        let edge = w.at(NOW + 2);
        let admin = format!("Bearer {ADMIN}");
        let (ra, rb, revoked) = block_on(async {
            futures_util::join!(
                edge.refresh(&a.refresh_token, None),
                async {
                    after(shift / 2).await;
                    edge.refresh(&b.refresh_token, None).await
                },
                async {
                    after(shift).await;
                    edge.admin_revoke(Some(&admin), None, "oUser1").await
                }
            )
        });
        assert!(revoked.is_ok(), "shift {shift}");
        for (login, rotated) in [(&a, ra), (&b, rb)] {
            let mut chain = vec![login.refresh_token.clone()];
            chain.extend(rotated.ok().map(|r| r.refresh_token));
            let sid = sid_of(&login.refresh_token);
            assert_dead(&w, &sid, &chain, NOW + 3, &format!("shift {shift}"));
        }
        // The user can log in again afterwards.
        let again = w.login_at(NOW + 4, GOOD);
        assert!(w.refresh(NOW + 5, &again.refresh_token).is_ok());
    }
}

#[test]
fn logout_racing_a_phone_binding_is_never_undone() {
    for shift in 0..SHIFTS {
        for legacy in [false, true] {
            let (w, r) = if legacy {
                let w = World::new();
                let r = w.login_at(NOW, &phone_login_reply());
                (w, r)
            } else {
                code_world()
            };
            let sid = sid_of(&r.refresh_token);
            if !legacy {
                w.reply(STABLE_T1);
                w.reply(PHONE_REPLY);
            }
            let auth = bearer_of(&r);
            let edge = w.at(NOW + 5);
            let req = if legacy {
                PhoneRequest::Encrypted(encrypted("phone_ok"))
            } else {
                PhoneRequest::Code("c1")
            };
            let (bound, out) = block_on(async {
                futures_util::join!(edge.bind_phone(Some(&auth), req), async {
                    after(shift).await;
                    edge.logout(Some(&auth)).await
                })
            });
            assert_eq!(out, Ok(()));
            // Binding does not rotate: the login's token is the whole chain.
            let chain = vec![r.refresh_token.clone()];
            if let Err(e) = bound {
                assert_eq!(e, ApiError::SessionRevoked, "shift {shift}");
            }
            let why = format!("shift {shift}, legacy {legacy}");
            assert_dead(&w, &sid, &chain, NOW + 6, &why);
        }
    }
}

#[test]
fn concurrent_refreshes_of_one_token_make_exactly_one_rotation() {
    for shift in 0..SHIFTS {
        let w = World::new();
        let r = w.login_at(NOW, GOOD);
        let sid = sid_of(&r.refresh_token);
        let edge = w.at(NOW + 5);
        let (a, b, c) = block_on(async {
            futures_util::join!(
                edge.refresh(&r.refresh_token, None),
                async {
                    after(shift).await;
                    edge.refresh(&r.refresh_token, None).await
                },
                async {
                    after(SHIFTS - shift).await;
                    edge.refresh(&r.refresh_token, None).await
                }
            )
        });
        let (a, b, c) = (a.expect("a"), b.expect("b"), c.expect("c"));
        assert_eq!(a, b, "shift {shift}: the same pair");
        assert_eq!(a, c, "shift {shift}: the same pair");
        let s = w.session(&sid).expect("session");
        assert_eq!(s.refresh_hash, hash_of(&a.refresh_token));
        assert_eq!(s.prev_hash, Some(hash_of(&r.refresh_token)));
        assert!(s.retired.is_empty(), "shift {shift}: one rotation only");
        assert!(w.refresh(NOW + 6, &a.refresh_token).is_ok());
    }
}

/// A double tap (or the client's own retry): two binds of one session at
/// once, met at every point of each other's path, then a refresh with the
/// login's refresh token past the grace window. Binding rotates nothing,
/// so that token is current: never reuse, never a session ended.
#[test]
fn concurrent_binds_leave_the_logins_refresh_token_current() {
    for shift in 0..SHIFTS {
        for legacy in [false, true] {
            let (w, r) = if legacy {
                let w = World::new();
                let r = w.login_at(NOW, &phone_login_reply());
                (w, r)
            } else {
                code_world()
            };
            if !legacy {
                w.reply(STABLE_T1);
                w.reply(PHONE_REPLY);
                w.reply(PHONE_REPLY);
            }
            let req = |code| {
                if legacy {
                    PhoneRequest::Encrypted(encrypted("phone_ok"))
                } else {
                    PhoneRequest::Code(code)
                }
            };
            let sid = sid_of(&r.refresh_token);
            let auth = bearer_of(&r);
            let edge = w.at(NOW + 5);
            let (a, b) = block_on(async {
                futures_util::join!(edge.bind_phone(Some(&auth), req("c1")), async {
                    after(shift).await;
                    edge.bind_phone(Some(&auth), req("c2")).await
                })
            });
            let why = format!("shift {shift}, legacy {legacy}");
            assert!(a.expect(&why).phone_bound, "{why}");
            assert!(b.expect(&why).phone_bound, "{why}");
            let s = w.session(&sid).expect("session");
            assert_eq!(s.refresh_hash, hash_of(&r.refresh_token), "{why}");
            let r2 = w
                .refresh(NOW + 5 + REFRESH_GRACE + 1, &r.refresh_token)
                .unwrap_or_else(|e| panic!("{why}: {e:?}"));
            assert!(r2.phone_bound, "{why}");
            assert!(!w.is_revoked(&sid), "{why}");
        }
    }
}

/// A bind racing a refresh of the same session, met at every point of
/// each other's path, each side first: the refresh rotates once, the bind
/// binds, no session ends, and the phone reaches the rotated pair (from
/// the session, or from the user record at the next refresh).
#[test]
fn a_bind_racing_a_refresh_never_ends_the_session_nor_rotates_twice() {
    for shift in 0..SHIFTS {
        for bind_first in [false, true] {
            let w = World::new();
            let r = w.login_at(NOW, &phone_login_reply());
            let sid = sid_of(&r.refresh_token);
            let auth = bearer_of(&r);
            let edge = w.at(NOW + 5);
            let req = PhoneRequest::Encrypted(encrypted("phone_ok"));
            let (bound, refreshed) = block_on(async {
                futures_util::join!(
                    async {
                        if !bind_first {
                            after(shift).await;
                        }
                        edge.bind_phone(Some(&auth), req).await
                    },
                    async {
                        if bind_first {
                            after(shift).await;
                        }
                        edge.refresh(&r.refresh_token, None).await
                    }
                )
            });
            let why = format!("shift {shift}, bind first {bind_first}");
            assert!(bound.expect(&why).phone_bound, "{why}");
            let r2 = refreshed.unwrap_or_else(|e| panic!("{why}: {e:?}"));
            let s = w.session(&sid).expect("session");
            assert!(s.revoked_at.is_none(), "{why}");
            assert_eq!(s.refresh_hash, hash_of(&r2.refresh_token), "{why}");
            assert_eq!(s.prev_hash, Some(hash_of(&r.refresh_token)), "{why}");
            assert!(s.retired.is_empty(), "{why}: one rotation only");
            assert_eq!(s.phone, Some(expected_phone()), "{why}");
            // The login's token within the grace: the same pair again.
            let again = w
                .refresh(NOW + 6, &r.refresh_token)
                .unwrap_or_else(|e| panic!("{why}: {e:?}"));
            assert_eq!(again.refresh_token, r2.refresh_token, "{why}");
            // The rotated token goes on, with the phone.
            let r3 = w
                .refresh(NOW + 7, &r2.refresh_token)
                .unwrap_or_else(|e| panic!("{why}: {e:?}"));
            assert!(r3.phone_bound, "{why}");
        }
    }
}

#[test]
fn concurrent_phone_bindings_in_one_isolate_fetch_the_wechat_token_once() {
    let (w, r) = code_world();
    let edge = w.at(NOW + 5);
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
    // Both were sent, and both bound (the session is live).
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

/// A refresh that waited in its authority's line past its worker's
/// deadline (the worker answered 503 and stopped waiting) is not applied
/// when its turn comes; so the client's retry, made later than the grace,
/// rotates instead of counting as reuse of a token the stale refresh would
/// have rotated away.
#[test]
fn a_stale_queued_refresh_does_not_rotate_after_the_clients_retry() {
    for shift in 0..SHIFTS {
        let w = World::new();
        let r = w.login_at(NOW, GOOD);
        let sid = sid_of(&r.refresh_token);
        let openid = OpenId::new("oUser1");
        let saved = || serde_json::to_value(w.authority.state(&openid)).expect("serializes");
        let before = saved();
        let edge = w.at(NOW + 5);
        let stale = block_on(async {
            // Something slow holds the user's turn.
            let slow = w.authority.turn(&openid).await;
            let (stale, ()) = futures_util::join!(edge.refresh(&r.refresh_token, None), async {
                while w.authority.waiting(&openid) == 0 {
                    YieldOnce(false).await;
                }
                after(shift).await;
                // The worker's 5 s pass; then the slow one ends.
                w.store.now.set(NOW + 11);
                drop(slow);
            });
            stale
        });
        assert_eq!(stale, Err(ApiError::StoreUnavailable), "shift {shift}");
        assert_eq!(saved(), before, "shift {shift}: not applied");
        // The client retries after the grace any rotation at NOW + 11 had.
        let retry = w
            .refresh(NOW + 12 + REFRESH_GRACE, &r.refresh_token)
            .expect("the retry rotates");
        assert!(!w.is_revoked(&sid), "shift {shift}");
        assert!(w.refresh(NOW + 60, &retry.refresh_token).is_ok());
    }
}
