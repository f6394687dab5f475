//! Random sequences of steps through the machine, time only moving
//! forward. After every step:
//! - **No ended session comes back.** Once a session is revoked, expired or
//!   forgotten, it is never live again, and a revocation's instant never
//!   changes. (Logins make fresh session ids, as the worker's 128 random
//!   bits do; a login reusing an id is outside the machine's contract.)
//! - **Retired hashes stay bounded:** no session keeps more than
//!   [`RETIRED_KEPT`].
//! - **The replica matches the state once the outbox drains:** after every
//!   step its effects are queued in the outbox, and a KV replica that
//!   starts empty is sent the outbox's entries in order, KV refusing one
//!   now and then (the rest stay queued, as in the server). Whatever KV
//!   refused, the replica with the outbox drained holds `session:{sid}`
//!   exactly for the sessions in the state that are not revoked, each
//!   equal to [`Replica::of`] it. So every live session has its put, with
//!   its current expiry and phone; every revoked one has had its delete,
//!   pruned or not; an expired one keeps its (self-expiring) replica until
//!   the alarm forgets both. When KV refused nothing, the outbox is empty.
//! - The replies agree with the state: what a rotation, a binding or a
//!   check answers is the session as now kept, and it is live.
//! - **A binding never rotates:** the session's refresh hashes and the
//!   instant its pair was issued are what they were before it.
//! - **The newest key signs:** a signature is made with the key of the
//!   live session whose key was set last (a replacement makes its session
//!   the newest), and there is one exactly when a session is live; a key
//!   is replaced only in a live session, and nothing else of it changes.
//!   Failed open data counts against the newest live session, and the
//!   fifth failure revokes it as a phone's does (the outbox promise above
//!   holds through both).

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;
use crate::authority::protocol::{
    BindPhone, CheckSession, Login, Logout, ReadUser, Refresh, Refreshed, ReplaceKey, RevokeAll,
    SessionView, SignLatest,
};
use crate::secret::login_state_signature;

const RULES: Rules = Rules {
    refresh_ttl: 200,
    max_age: 2_000,
    grace: 10,
};
const T0: i64 = 1_764_000_000;

/// Which hash a refresh presents, of the session's.
#[derive(Debug, Clone, Copy)]
enum Presented {
    Current,
    Previous,
    Retired(usize),
    Unknown,
}

/// One step, with the session it names picked among those made so far,
/// counting back from the latest (one past the first: a session that
/// never existed).
#[derive(Debug, Clone)]
enum Action {
    Login(Option<bool>),
    Refresh(usize, Presented, Option<bool>),
    /// Several refreshes in a row with the current token: long rotation
    /// histories, where the retired hashes reach their bound.
    Rotate(usize, usize),
    Logout(usize),
    RevokeAll,
    Bind(usize, Option<bool>),
    DecryptFailed(usize),
    Check(usize),
    ReadUser,
    /// A reset or a re-key: the session's key replaced by the `n`th key.
    ReplaceKey(usize, u8),
    /// A signature with the newest key.
    SignLatest,
    /// Open data that no key opened: counted against the newest live
    /// session, as the server does.
    OpenFailed,
    /// The alarm: forget what has expired.
    Alarm,
}

fn listed() -> impl Strategy<Value = Option<bool>> {
    prop_oneof![4 => Just(None), 1 => Just(Some(true)), 1 => Just(Some(false))]
}

fn presented() -> impl Strategy<Value = Presented> {
    prop_oneof![
        6 => Just(Presented::Current),
        2 => Just(Presented::Previous),
        1 => (0usize..20).prop_map(Presented::Retired),
        1 => Just(Presented::Unknown),
    ]
}

fn action() -> impl Strategy<Value = Action> {
    // Mostly the latest session, so that some live long and rotate often.
    let pick = prop_oneof![6 => Just(0usize), 2 => 1usize..3, 1 => 0usize..9];
    prop_oneof![
        2 => listed().prop_map(Action::Login),
        12 => (pick.clone(), presented(), listed()).prop_map(|(i, p, l)| Action::Refresh(i, p, l)),
        2 => (pick.clone(), 1usize..24).prop_map(|(i, n)| Action::Rotate(i, n)),
        1 => pick.clone().prop_map(Action::Logout),
        1 => Just(Action::RevokeAll),
        2 => (pick.clone(), listed()).prop_map(|(i, l)| Action::Bind(i, l)),
        2 => pick.clone().prop_map(Action::DecryptFailed),
        1 => pick.clone().prop_map(Action::Check),
        1 => Just(Action::ReadUser),
        2 => (pick, 0u8..4).prop_map(|(i, k)| Action::ReplaceKey(i, k)),
        1 => Just(Action::SignLatest),
        2 => Just(Action::OpenFailed),
        1 => Just(Action::Alarm),
    ]
}

/// Seconds before the next step: mostly within the grace, sometimes past
/// a session's life.
fn pause() -> impl Strategy<Value = i64> {
    prop_oneof![12 => 0i64..12, 2 => 12i64..250, 1 => 250i64..2_500]
}

fn phone() -> Phone {
    Phone::for_tests("13800138000", "13800138000", "86")
}

/// The keys a session may hold: the login's is the first.
const KEYS: [&str; 4] = [
    "tiihtNczf5v6AKRyjwEUhQ==",
    "o0q0otL8aEzpcZL/FT9WsQ==",
    "HyVFkGl5F5OQWJZZaNzBBg==",
    "AAAAAAAAAAAAAAAAAAAAAA==",
];

fn key(n: u8) -> SessionKey {
    SessionKey::from_base64(KEYS[usize::from(n) % KEYS.len()]).expect("16 bytes")
}

/// Which entry of the outbox KV refuses at the next drain, if any.
fn refusal() -> impl Strategy<Value = Option<usize>> {
    prop_oneof![3 => Just(None), 1 => (0usize..4).prop_map(Some)]
}

/// Performs `entry` for `sid` on a replica.
fn perform(kv: &mut BTreeMap<SessionId, Replica>, sid: &SessionId, entry: &Pending) {
    match entry {
        Pending::Put(r) => {
            kv.insert(sid.clone(), r.clone());
        }
        Pending::Delete => {
            kv.remove(sid);
        }
    }
}

/// The machine, the replica its outbox built, and what was seen.
struct Run {
    openid: OpenId,
    state: UserState,
    kv: BTreeMap<SessionId, Replica>,
    /// The outbox entry KV refuses at this step's drains.
    refuse: Option<usize>,
    /// Every session ever made, in order.
    made: Vec<SessionId>,
    /// Sessions seen ended, with their revocation instant if any.
    ended: BTreeMap<SessionId, Option<i64>>,
    hashes: u32,
}

impl Run {
    fn fresh_hash(&mut self) -> RefreshHash {
        self.hashes += 1;
        RefreshHash::new(format!("h{}", self.hashes))
    }

    fn sid(&self, back: usize) -> SessionId {
        let n = self.made.len();
        match back % (n + 1) {
            b if b < n => self.made[n - 1 - b].clone(),
            _ => SessionId::new("never"),
        }
    }

    /// Sends the outbox to KV in order, as the server does: the entry KV
    /// refuses, and those after it, stay queued.
    fn drain(&mut self, now: i64) {
        for (i, (sid, entry)) in self.state.outbox.entries().into_iter().enumerate() {
            if self.refuse == Some(i) {
                self.state.outbox.failed(now);
                return;
            }
            perform(&mut self.kv, &sid, &entry);
            self.state.outbox.accepted(&sid, &entry);
        }
    }

    fn apply<S: Step>(&mut self, step: S, now: i64, phone_listed: Option<bool>) -> S::Reply {
        let at = Context {
            openid: &self.openid,
            now,
            rules: RULES,
            phone_listed,
        };
        let (reply, _) = self.state.apply(step, &at);
        self.drain(now);
        reply
    }

    /// The session as kept now, which a reply about it must show.
    fn view_of(&self, sid: &SessionId) -> Option<SessionView> {
        self.state.sessions.get(sid).map(|s| s.view(&self.openid))
    }

    /// A refresh presenting `which` of the session's hashes.
    fn refresh(
        &mut self,
        i: usize,
        which: Presented,
        l: Option<bool>,
        now: i64,
    ) -> Result<(), TestCaseError> {
        let sid = self.sid(i);
        let s = self.state.sessions.get(&sid);
        let presented = match (which, s) {
            (Presented::Current, Some(s)) => s.refresh_hash.clone(),
            (Presented::Previous, Some(s)) if s.prev_hash.is_some() => {
                s.prev_hash.clone().expect("checked")
            }
            (Presented::Retired(k), Some(s)) if !s.retired.is_empty() => {
                s.retired[k % s.retired.len()].clone()
            }
            _ => RefreshHash::new("unknown"),
        };
        let next_hash = self.fresh_hash();
        let refresh = Refresh {
            sid: sid.clone(),
            presented_hash: presented,
            next_hash: next_hash.clone(),
            next_sealed: "sealed".into(),
        };
        let before = self
            .state
            .sessions
            .get(&sid)
            .map(|s| s.refresh_hash.clone());
        match self.apply(refresh, now, l) {
            Ok(Refreshed::Rotated(view)) => {
                prop_assert_eq!(Some(view), self.view_of(&sid));
                prop_assert_eq!(&self.state.sessions[&sid].refresh_hash, &next_hash);
            }
            Ok(Refreshed::Repeated { session, .. }) => {
                prop_assert_eq!(Some(session), self.view_of(&sid));
                let after = self
                    .state
                    .sessions
                    .get(&sid)
                    .map(|s| s.refresh_hash.clone());
                prop_assert_eq!(before, after, "a repeat rotated");
            }
            Err(_) => {
                let after = self
                    .state
                    .sessions
                    .get(&sid)
                    .map(|s| s.refresh_hash.clone());
                prop_assert!(after.is_none() || after == before, "a refusal rotated");
            }
        }
        Ok(())
    }

    fn step(&mut self, action: Action, now: i64) -> Result<(), TestCaseError> {
        match action {
            Action::Login(l) => {
                let sid = SessionId::new(format!("s{}", self.made.len()));
                self.made.push(sid.clone());
                let login = Login {
                    sid: sid.clone(),
                    session_key: key(0),
                    unionid: None,
                    refresh_hash: self.fresh_hash(),
                    ip: None,
                };
                let view = self.apply(login, now, l);
                prop_assert_eq!(Some(view), self.view_of(&sid));
            }
            Action::Refresh(i, which, l) => self.refresh(i, which, l, now)?,
            Action::Rotate(i, n) => {
                for _ in 0..n {
                    self.step(Action::Refresh(i, Presented::Current, None), now)?;
                }
            }
            Action::Logout(i) => {
                let sid = self.sid(i);
                self.apply(Logout { sid }, now, None);
            }
            Action::RevokeAll => {
                self.apply(RevokeAll, now, None);
            }
            Action::Bind(i, l) => {
                let sid = self.sid(i);
                let bind = BindPhone {
                    sid: sid.clone(),
                    phone: phone(),
                };
                // What a rotation would change (an expired session may be
                // pruned by the step, never rotated).
                let pair = |st: &UserState| {
                    st.sessions.get(&sid).map(|s| {
                        let hashes = (s.refresh_hash.clone(), s.prev_hash.clone());
                        (hashes, s.retired.clone(), s.issued_at)
                    })
                };
                let before = pair(&self.state);
                if let Ok(bound) = self.apply(bind, now, l) {
                    prop_assert_eq!(Some(bound.session), self.view_of(&sid));
                    prop_assert_eq!(self.state.user_phone(), Some(&phone()));
                }
                let after = pair(&self.state);
                prop_assert!(after.is_none() || after == before, "a binding rotated");
            }
            Action::DecryptFailed(i) => {
                let sid = self.sid(i);
                self.apply(DecryptFailed { sid }, now, None);
            }
            Action::Check(i) => {
                let sid = self.sid(i);
                let live = self
                    .state
                    .sessions
                    .get(&sid)
                    .is_some_and(|s| s.is_live(now));
                let reply = self.apply(CheckSession { sid: sid.clone() }, now, None);
                prop_assert_eq!(reply.is_ok(), live);
                if let Ok(view) = reply {
                    prop_assert_eq!(Some(view), self.view_of(&sid));
                }
            }
            Action::ReadUser => {
                let live = self
                    .state
                    .sessions
                    .values()
                    .filter(|s| s.is_live(now))
                    .count();
                let summary = self.apply(ReadUser, now, None);
                prop_assert_eq!(summary.live_sessions, live);
            }
            Action::ReplaceKey(i, k) => self.replace_key(i, k, now)?,
            Action::SignLatest => self.sign_latest(now)?,
            Action::OpenFailed => self.open_failed(now)?,
            Action::Alarm => {
                self.state.prune(now);
                self.drain(now);
            }
        }
        Ok(())
    }

    /// Open data no key opened: one failure against the newest live
    /// session, as the server counts it; the fifth revokes it.
    fn open_failed(&mut self, now: i64) -> Result<(), TestCaseError> {
        let newest = self
            .state
            .live_keys_newest_first(now)
            .first()
            .map(|(sid, _)| (*sid).clone());
        if let Some(sid) = newest {
            let before = self.state.sessions[&sid].failed_decrypts;
            self.apply(DecryptFailed { sid: sid.clone() }, now, None);
            let s = &self.state.sessions[&sid];
            prop_assert_eq!(s.failed_decrypts, before + 1);
            prop_assert_eq!(
                s.revoked_at.is_some(),
                s.failed_decrypts >= MAX_FAILED_DECRYPTS
            );
        } else {
            // No live session: answered at once, nothing counted;
            // what is pending is the alarm's, as here.
            self.step(Action::Alarm, now)?;
        }
        Ok(())
    }

    /// Session `i`'s key replaced by key `k`: only a live session's, and
    /// nothing but its key and `key_at` changes.
    fn replace_key(&mut self, i: usize, k: u8, now: i64) -> Result<(), TestCaseError> {
        let sid = self.sid(i);
        let live = self
            .state
            .sessions
            .get(&sid)
            .is_some_and(|s| s.is_live(now));
        let before = self.state.sessions.get(&sid).map(|s| s.view(&self.openid));
        let failures = self.state.sessions.get(&sid).map(|s| s.failed_decrypts);
        let replace = ReplaceKey {
            sid: sid.clone(),
            session_key: key(k),
        };
        let reply = self.apply(replace, now, None);
        prop_assert_eq!(reply.is_ok(), live);
        if live {
            let s = &self.state.sessions[&sid];
            prop_assert_eq!(s.session_key.bytes(), &key(k).bytes().clone());
            prop_assert_eq!(s.key_at(), now);
            prop_assert_eq!(
                Some(s.view(&self.openid)),
                before,
                "a replacement changed more"
            );
            prop_assert_eq!(
                Some(s.failed_decrypts),
                failures,
                "the failures were forgotten"
            );
        }
        Ok(())
    }

    /// A signature: by the live session whose key was set last (of two
    /// set at once, the later created), with its key; none without a
    /// live session.
    fn sign_latest(&mut self, now: i64) -> Result<(), TestCaseError> {
        let newest = self
            .state
            .sessions
            .iter()
            .filter(|(_, s)| s.is_live(now))
            .max_by_key(|(sid, s)| (s.key_at(), s.created_at, (*sid).clone()))
            .map(|(sid, s)| (sid.clone(), s.session_key.clone()));
        let data = format!("signData at {now}");
        let reply = self.apply(SignLatest { data: data.clone() }, now, None);
        match (reply, newest) {
            (Ok(signed), Some((sid, key))) => {
                prop_assert_eq!(signed.sid, sid);
                prop_assert_eq!(
                    signed.signature,
                    login_state_signature(&key, data.as_bytes())
                );
            }
            (Err(_), None) => {}
            (reply, newest) => {
                prop_assert!(false, "{:?} with newest {:?}", reply, newest.map(|n| n.0));
            }
        }
        Ok(())
    }

    fn check(&mut self, now: i64) -> Result<(), TestCaseError> {
        let expected: BTreeMap<SessionId, Replica> = self
            .state
            .sessions
            .iter()
            .filter(|(_, s)| s.revoked_at.is_none())
            .map(|(sid, s)| (sid.clone(), Replica::of(&self.openid, s)))
            .collect();
        if self.refuse.is_none() {
            prop_assert!(
                self.state.outbox.pending.is_empty(),
                "the outbox kept an entry"
            );
        }
        let mut drained = self.kv.clone();
        for (sid, entry) in self.state.outbox.entries() {
            perform(&mut drained, &sid, &entry);
        }
        prop_assert_eq!(&drained, &expected, "the replica strayed from the state");
        for (sid, revoked_at) in &self.ended {
            if let Some(s) = self.state.sessions.get(sid) {
                prop_assert!(!s.is_live(now), "{:?} came back", sid);
                if revoked_at.is_some() {
                    prop_assert_eq!(s.revoked_at, *revoked_at, "{:?}: revocation moved", sid);
                }
            }
        }
        for s in self.state.sessions.values() {
            prop_assert!(s.retired.len() <= RETIRED_KEPT);
        }
        let known: BTreeSet<&SessionId> = self.made.iter().collect();
        prop_assert!(self.state.sessions.keys().all(|sid| known.contains(sid)));
        for sid in &self.made {
            let s = self.state.sessions.get(sid);
            if !s.is_some_and(|s| s.is_live(now)) {
                let revoked_at = s.and_then(|s| s.revoked_at);
                let seen = self.ended.entry(sid.clone()).or_insert(revoked_at);
                if seen.is_none() {
                    *seen = revoked_at;
                }
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_steps_keep_the_machines_promises(
        steps in prop::collection::vec((pause(), action(), refusal()), 1..160),
    ) {
        let mut run = Run {
            openid: OpenId::new("oUser1"),
            state: UserState::default(),
            kv: BTreeMap::new(),
            refuse: None,
            made: Vec::new(),
            ended: BTreeMap::new(),
            hashes: 0,
        };
        let mut now = T0;
        for (pause, action, refuse) in steps {
            now += pause;
            run.refuse = refuse;
            run.step(action, now)?;
            run.check(now)?;
        }
    }
}
