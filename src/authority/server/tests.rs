//! The replica outbox, through the server: KV failing each write in turn
//! along every change, then recovering; an object stopped between its
//! storage write and its KV write; KV's one write a second per key; and
//! no storage write for what changed nothing.
//!
//! After the outbox drains, the replica always matches the state: KV
//! holds `session:{sid}` exactly for the sessions not revoked, each as
//! [`Replica::of`] it.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::pin;
use std::task::{Context as TaskContext, Waker};

use super::*;
use crate::authority::machine::{DecryptFailed, Replica};
use crate::authority::protocol::{
    CheckSession, Envelope, Login, Logout, OpenData, ReadUser, Refresh, ReplaceKey,
};
use crate::secret::{RefreshHash, SessionKey};
use crate::testkit::flaky::{ClockTimer, FlakyKv, VirtualClock};
use crate::testkit::{test_config, MemoryState};
use crate::wechat::open_data::EncryptedData;

const T0: i64 = 1_764_000_000;

fn user() -> OpenId {
    OpenId::new("oUser1")
}

fn sid(n: u8) -> SessionId {
    SessionId::new(format!("sid{n}"))
}

fn login(n: u8) -> Login {
    Login {
        sid: sid(n),
        session_key: SessionKey::from_base64("tiihtNczf5v6AKRyjwEUhQ==").expect("16 bytes"),
        unionid: None,
        refresh_hash: RefreshHash::new(format!("h{n}.0")),
        ip: None,
    }
}

/// Session `n` refreshed from its `k`th hash to its next.
fn refresh(n: u8, k: u32) -> Refresh {
    Refresh {
        sid: sid(n),
        presented_hash: RefreshHash::new(format!("h{n}.{k}")),
        next_hash: RefreshHash::new(format!("h{n}.{}", k + 1)),
        next_sealed: "sealed".into(),
    }
}

/// Open data no key of these tests opens (whole blocks, a 16-byte iv).
fn garbage() -> OpenData {
    OpenData {
        encrypted: EncryptedData {
            encrypted_data: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into(),
            iv: "AAAAAAAAAAAAAAAAAAAAAA==".into(),
        },
    }
}

/// Session `n`'s key replaced.
fn replace_key(n: u8) -> ReplaceKey {
    ReplaceKey {
        sid: sid(n),
        session_key: SessionKey::from_base64("o0q0otL8aEzpcZL/FT9WsQ==").expect("16 bytes"),
    }
}

/// One object's memory: lost on a restart, unlike its storage.
#[derive(Default)]
struct Memory {
    serial: Serial,
    pacing: Pacing,
}

/// One user's authority, with KV that fails as told and a virtual clock.
struct Rig {
    state: MemoryState,
    memory: Memory,
    kv: FlakyKv,
    clock: VirtualClock,
    cfg: Config,
    now: Cell<i64>,
}

impl Rig {
    fn new() -> Self {
        let clock = VirtualClock::default();
        clock.set(T0 * 1000);
        Rig {
            state: MemoryState::default(),
            memory: Memory::default(),
            kv: FlakyKv::default(),
            clock,
            cfg: test_config(),
            now: Cell::new(T0),
        }
    }

    /// KV refusing a second write to a key within a second.
    fn paced() -> Self {
        let rig = Rig::new();
        Rig {
            kv: FlakyKv::paced(rig.clock.clone()),
            ..rig
        }
    }

    fn server<'a>(&'a self, timer: &'a ClockTimer) -> Server<'a, MemoryState, FlakyKv, ClockTimer> {
        Server {
            state: &self.state,
            kv: &self.kv,
            timer,
            cfg: &self.cfg,
            serial: &self.memory.serial,
            pacing: &self.memory.pacing,
        }
    }

    /// Moves both clocks on by `secs`.
    fn wait(&self, secs: i64) {
        self.now.set(self.now.get() + secs);
        self.clock.set(self.clock.get() + secs * 1000);
    }

    fn send(&self, request: impl Into<Request>) -> Answered {
        let body =
            serde_json::to_string(&Envelope::new(user(), request, i64::MAX)).expect("serializes");
        let timer = ClockTimer(self.clock.clone());
        pollster::block_on(self.server(&timer).answer(&body, self.now.get()))
    }

    /// A step that is not on the wire (the failed legacy decryption).
    fn step<S: Step>(&self, step: S) -> Result<S::Reply, StoreError> {
        let timer = ClockTimer(self.clock.clone());
        let server = self.server(&timer);
        pollster::block_on(async {
            let (mut state, saved) = server.load().await?;
            let mut run = Run {
                server: &server,
                state: &mut state,
                saved,
                openid: &user(),
                now: self.now.get(),
            };
            run.commit(step, None).await
        })
    }

    fn alarm(&self) -> Result<(), StoreError> {
        let timer = ClockTimer(self.clock.clone());
        pollster::block_on(self.server(&timer).alarm(self.now.get()))
    }

    /// The object restarts: its memory is gone, its storage kept.
    fn restart(&mut self) {
        self.memory = Memory::default();
    }

    fn saved(&self) -> UserState {
        let text = self.state.text.borrow().clone().expect("a state was saved");
        serde_json::from_str(&text).expect("parses")
    }

    /// The replica as KV holds it.
    fn replica(&self) -> BTreeMap<String, Replica> {
        self.kv
            .inner
            .data
            .borrow()
            .iter()
            .filter_map(|(k, (v, _))| {
                let sid = k.strip_prefix("session:")?;
                Some((sid.to_string(), serde_json::from_str(v).expect("a replica")))
            })
            .collect()
    }

    /// The outbox is empty and KV holds exactly the sessions not revoked.
    fn assert_replica_matches(&self, what: &str) {
        let state = self.saved();
        assert!(state.outbox.is_empty(), "{what}: {:?}", state.outbox);
        let expected: BTreeMap<String, Replica> = state
            .sessions
            .iter()
            .filter(|(_, s)| s.revoked_at.is_none())
            .map(|(sid, s)| (sid.to_string(), Replica::of(&user(), s)))
            .collect();
        assert_eq!(self.replica(), expected, "{what}");
    }
}

/// One change along a user's life, named.
type Change = (&'static str, Box<dyn Fn(&Rig)>);

/// The changes along a user's life, each after the ones before it.
fn scenario() -> Vec<Change> {
    let decrypt_failed = |rig: &Rig| {
        for _ in 0..crate::authority::machine::MAX_FAILED_DECRYPTS {
            let _ = rig.step(DecryptFailed { sid: sid(3) });
        }
    };
    vec![
        ("login", Box::new(|rig: &Rig| drop(rig.send(login(1))))),
        (
            "second login",
            Box::new(|rig: &Rig| drop(rig.send(login(2)))),
        ),
        (
            "third login",
            Box::new(|rig: &Rig| drop(rig.send(login(3)))),
        ),
        (
            "refresh",
            Box::new(|rig: &Rig| drop(rig.send(refresh(1, 0)))),
        ),
        // The first token again, past the grace: reuse revokes session 1.
        (
            "reuse",
            Box::new(|rig: &Rig| {
                rig.wait(20);
                drop(rig.send(refresh(1, 0)));
            }),
        ),
        (
            "logout",
            Box::new(|rig: &Rig| drop(rig.send(Logout { sid: sid(2) }))),
        ),
        ("decryption lockout", Box::new(decrypt_failed)),
        (
            "fourth login",
            Box::new(|rig: &Rig| drop(rig.send(login(4)))),
        ),
        // Session 4's key replaced (no replica write of its own), then
        // open data no key opens, five times: the newest live session,
        // 4, is revoked.
        (
            "re-key, then the open-data lockout",
            Box::new(|rig: &Rig| {
                drop(rig.send(replace_key(4)));
                for _ in 0..crate::authority::machine::MAX_FAILED_DECRYPTS {
                    drop(rig.send(garbage()));
                }
            }),
        ),
        (
            "sixth login",
            Box::new(|rig: &Rig| drop(rig.send(login(6)))),
        ),
        (
            "revoke all",
            Box::new(|rig: &Rig| drop(rig.send(RevokeAll))),
        ),
        (
            "fifth login",
            Box::new(|rig: &Rig| drop(rig.send(login(5)))),
        ),
        // Everything expires; the alarm forgets it.
        (
            "pruning",
            Box::new(|rig: &Rig| {
                rig.wait(rig.cfg.refresh_ttl_secs() + 1);
                let _ = rig.alarm();
            }),
        ),
    ]
}

/// For every change along [`scenario`], and every write it makes: KV
/// fails that write (once, or from then on); the change either is
/// answered or says "try again"; once KV recovers and the alarm drains the
/// outbox, the replica matches the state.
#[test]
fn every_failed_replica_write_is_finished_once_kv_recovers() {
    let steps = scenario();
    for (i, (name, _)) in steps.iter().enumerate() {
        // How many writes the change makes when nothing fails.
        let rig = Rig::new();
        for (_, step) in &steps[..i] {
            step(&rig);
        }
        let before = rig.kv.writes.get();
        steps[i].1(&rig);
        let writes = rig.kv.writes.get() - before;
        assert!(writes > 0, "{name} writes the replica");
        rig.assert_replica_matches(name);
        for n in 0..writes {
            for outage in [false, true] {
                let what = format!("{name}, write {n} failing (outage: {outage})");
                let rig = Rig::new();
                for (_, step) in &steps[..i] {
                    step(&rig);
                }
                rig.kv
                    .fail_writes(n..if outage { usize::MAX } else { n + 1 });
                steps[i].1(&rig);
                assert!(
                    !rig.saved().outbox.pending.is_empty(),
                    "{what}: the refused write is kept"
                );
                assert!(rig.state.alarm_ms.get().is_some(), "{what}: no alarm");
                rig.kv.recover();
                rig.wait(1);
                assert_eq!(rig.alarm(), Ok(()), "{what}");
                rig.assert_replica_matches(&what);
                // And the rest of the life goes on as it would have.
                for (_, step) in &steps[i + 1..] {
                    step(&rig);
                }
                rig.assert_replica_matches(&format!("{what}, then the rest"));
            }
        }
    }
}

/// What the worker hears when KV refuses: 503, the change saved, and a
/// repeated logout (or any request) finishes it.
#[test]
fn a_refused_logout_answers_503_is_saved_and_a_repeat_finishes_it() {
    let rig = Rig::new();
    assert_eq!(rig.send(login(1)).status, 200);
    rig.kv.fail_writes(0..1);
    let answered = rig.send(Logout { sid: sid(1) });
    assert_eq!(answered, Answered::error(503, "storage unavailable"));
    let saved = rig.saved();
    assert!(
        saved.sessions[&sid(1)].revoked_at.is_some(),
        "the logout is saved"
    );
    assert_eq!(saved.outbox.pending[&sid(1)], Pending::Delete);
    assert_eq!(saved.outbox.retry_at, Some(T0 + 1));
    assert_eq!(rig.state.alarm_ms.get(), Some((T0 + 1) * 1000));
    assert!(rig.replica().contains_key("sid1"), "KV refused");
    // The client's retry: the session is already revoked, and the delete
    // still goes out.
    assert_eq!(rig.send(Logout { sid: sid(1) }).status, 200);
    rig.assert_replica_matches("after the repeated logout");
}

/// While KV stays down the alarm backs off: 1 s, 2 s, 4 s...; a read
/// answers from the state and tries KV only when a retry is due.
#[test]
fn while_kv_is_down_the_alarm_backs_off_and_reads_still_answer() {
    let rig = Rig::new();
    assert_eq!(rig.send(login(1)).status, 200);
    rig.kv.fail_writes(0..usize::MAX);
    assert_eq!(rig.send(RevokeAll).status, 503);
    for wait in [1, 2, 4, 8, 16] {
        assert_eq!(rig.saved().outbox.retry_at, Some(rig.now.get() + wait));
        let writes = rig.kv.writes.get();
        assert_eq!(rig.send(CheckSession { sid: sid(1) }).status, 200);
        assert_eq!(
            rig.kv.writes.get(),
            writes,
            "a read before the retry is due"
        );
        rig.wait(wait);
        assert_eq!(rig.alarm(), Err(StoreError));
    }
    rig.kv.recover();
    rig.wait(32);
    // A read once the retry is due drains it too.
    assert_eq!(rig.send(ReadUser).status, 200);
    rig.assert_replica_matches("after the read");
    assert_eq!(rig.saved().outbox.failures, 0);
}

/// Polls `fut` until `done`, then drops it: the object stopped there.
fn stop_when(fut: impl Future, done: impl Fn() -> bool) {
    let mut fut = pin!(fut);
    let mut cx = TaskContext::from_waker(Waker::noop());
    for _ in 0..1_000 {
        if done() {
            return;
        }
        assert!(fut.as_mut().poll(&mut cx).is_pending(), "finished early");
    }
    panic!("never got there");
}

/// An object stopped between its storage write and its KV write (a
/// deploy): the change is saved with its replica writes queued, and the
/// next request, or the alarm, finishes them.
#[test]
fn a_restart_between_the_storage_and_kv_writes_is_finished_later() {
    for by_alarm in [false, true] {
        let mut rig = Rig::new();
        assert_eq!(rig.send(login(1)).status, 200);
        let saves = rig.state.saves.get();
        rig.kv.hang.set(true);
        let body = serde_json::to_string(&Envelope::new(user(), Logout { sid: sid(1) }, i64::MAX))
            .expect("json");
        let timer = ClockTimer(rig.clock.clone());
        stop_when(rig.server(&timer).answer(&body, T0), || {
            rig.state.saves.get() > saves
        });
        rig.restart();
        rig.kv.hang.set(false);
        let saved = rig.saved();
        assert!(saved.sessions[&sid(1)].revoked_at.is_some());
        assert_eq!(saved.outbox.pending[&sid(1)], Pending::Delete);
        assert_eq!(rig.state.alarm_ms.get(), Some((T0 + 1) * 1000));
        assert!(rig.replica().contains_key("sid1"));
        if by_alarm {
            rig.wait(1);
            assert_eq!(rig.alarm(), Ok(()));
        } else {
            assert_eq!(rig.send(CheckSession { sid: sid(1) }).status, 200);
        }
        rig.assert_replica_matches(if by_alarm {
            "by the alarm"
        } else {
            "by a read"
        });
    }
}

/// KV allows one write a second per key: a logout right after a refresh
/// (`client.logout()`), or refreshes in a row, wait their turn, and none
/// is lost.
#[test]
fn writes_to_one_key_are_spaced_a_second_apart_and_never_lost() {
    let rig = Rig::paced();
    let start = rig.clock.get();
    assert_eq!(rig.send(login(1)).status, 200);
    for k in 0..3 {
        assert_eq!(rig.send(refresh(1, k)).status, 200);
    }
    assert_eq!(rig.send(Logout { sid: sid(1) }).status, 200);
    assert_eq!(rig.kv.too_soon.get(), 0, "KV refused a write");
    assert!(
        rig.clock.get() - start >= 4 * 1_000,
        "the writes were spaced"
    );
    rig.assert_replica_matches("after the logout");
    // Other keys do not wait.
    let before = rig.clock.get();
    assert_eq!(rig.send(login(2)).status, 200);
    assert_eq!(rig.clock.get(), before);
}

/// A restart forgets when each key was written: KV's refusal (its 429)
/// keeps the write in the outbox for the alarm.
#[test]
fn kvs_write_rate_refusal_after_a_restart_is_retried_by_the_alarm() {
    let mut rig = Rig::paced();
    assert_eq!(rig.send(login(1)).status, 200);
    rig.restart();
    assert_eq!(rig.send(Logout { sid: sid(1) }).status, 503);
    assert_eq!(rig.kv.too_soon.get(), 1);
    assert!(rig.replica().contains_key("sid1"));
    rig.wait(1);
    assert_eq!(rig.alarm(), Ok(()));
    rig.assert_replica_matches("after the alarm");
}

/// Nothing changed, nothing written: a refused refresh, a logout of an
/// unknown session, a check, a read. An authority with nothing to keep
/// never writes at all.
#[test]
fn what_changes_nothing_writes_nothing() {
    let rig = Rig::new();
    assert_eq!(rig.send(refresh(9, 0)).status, 200);
    assert_eq!(rig.send(Logout { sid: sid(9) }).status, 200);
    assert_eq!(rig.send(CheckSession { sid: sid(9) }).status, 200);
    assert_eq!(rig.send(ReadUser).status, 200);
    assert_eq!(rig.send(RevokeAll).status, 200);
    // The session-key operations, for a user with no record (an openid
    // from an origin's path): refused, nothing written.
    let none = rig.send(crate::authority::protocol::SignLatest {
        data: String::new(),
    });
    assert_eq!(none.body, r#"{"Err":null}"#);
    assert_eq!(rig.send(replace_key(9)).body, r#"{"Err":null}"#);
    assert_eq!(rig.send(garbage()).body, r#"{"Err":"no_live_session"}"#);
    assert_eq!(rig.alarm(), Ok(()));
    assert_eq!(rig.state.saves.get(), 0);
    assert_eq!(*rig.state.text.borrow(), None, "an empty state was written");
    assert_eq!(rig.kv.writes.get(), 0);

    assert_eq!(rig.send(login(1)).status, 200);
    let saves = rig.state.saves.get();
    assert_eq!(saves, 2, "the login with its replica queued, then drained");
    assert_eq!(rig.send(refresh(1, 7)).status, 200);
    assert_eq!(rig.send(refresh(9, 0)).status, 200);
    assert_eq!(rig.send(Logout { sid: sid(9) }).status, 200);
    assert_eq!(rig.send(CheckSession { sid: sid(1) }).status, 200);
    assert_eq!(rig.send(ReadUser).status, 200);
    assert_eq!(rig.state.saves.get(), saves);
    assert_eq!(rig.kv.writes.get(), 1);
}

/// A refresh's pair stands although KV refused its replica's update: the
/// rotation is saved, the update waits in the outbox, and the replica the
/// session had (its previous expiry, still ahead) keeps it usable.
#[test]
fn a_refreshs_pair_stands_when_kv_refuses_its_replica() {
    let rig = Rig::new();
    assert_eq!(rig.send(login(1)).status, 200);
    rig.kv.fail_writes(0..usize::MAX);
    let answered = rig.send(refresh(1, 0));
    assert_eq!(answered.status, 200);
    assert!(answered.body.contains("rotated"), "{}", answered.body);
    assert!(matches!(
        rig.saved().outbox.pending[&sid(1)],
        Pending::Put(_)
    ));
    // Repeated within the grace: the same pair, still 200.
    assert_eq!(rig.send(refresh(1, 0)).status, 200);
    rig.kv.recover();
    rig.wait(2);
    assert_eq!(rig.alarm(), Ok(()));
    rig.assert_replica_matches("after the alarm");
}

/// A replaced key stands although KV refuses an earlier change's replica
/// (the replica carries no key): saved, answered, and the alarm finishes
/// the replica. Then open data under neither key locks the newest session
/// out, its failures counted across the replacement.
#[test]
fn a_replaced_key_stands_when_kv_refuses_and_the_lockout_counts_across_it() {
    let rig = Rig::new();
    assert_eq!(rig.send(login(1)).status, 200);
    assert_eq!(rig.send(login(2)).status, 200);
    rig.kv.fail_writes(0..usize::MAX);
    // The logout's delete is refused: 503, kept.
    assert_eq!(rig.send(Logout { sid: sid(2) }).status, 503);
    rig.wait(1);
    let answered = rig.send(replace_key(1));
    assert_eq!(answered.status, 200, "{answered:?}");
    assert_eq!(answered.body, r#"{"Ok":null}"#);
    let saved = rig.saved();
    let s = &saved.sessions[&sid(1)];
    assert_eq!(
        s.session_key.to_base64(),
        "o0q0otL8aEzpcZL/FT9WsQ==",
        "the key is saved"
    );
    assert_eq!(s.key_replaced_at, Some(T0 + 1));
    assert!(
        !saved.outbox.pending.is_empty(),
        "the logout's delete waits"
    );
    rig.kv.recover();
    rig.wait(1);
    assert_eq!(rig.alarm(), Ok(()));
    rig.assert_replica_matches("after the alarm");
    // A revoked session's key is not replaced.
    assert_eq!(rig.send(replace_key(2)).body, r#"{"Err":null}"#);
    // Two failures before, three after another replacement: revoked.
    for _ in 0..2 {
        assert_eq!(
            rig.send(garbage()).body,
            r#"{"Err":{"open_data":"decrypt_failed"}}"#
        );
    }
    assert_eq!(rig.send(replace_key(1)).status, 200);
    for _ in 0..3 {
        assert_eq!(
            rig.send(garbage()).body,
            r#"{"Err":{"open_data":"decrypt_failed"}}"#
        );
    }
    let saved = rig.saved();
    assert!(saved.sessions[&sid(1)].revoked_at.is_some());
    rig.assert_replica_matches("after the lockout");
    assert_eq!(rig.send(garbage()).body, r#"{"Err":"no_live_session"}"#);
}
