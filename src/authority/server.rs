//! One authority's request handling: everything the Durable Object does,
//! with its storage, KV and timer passed in so the host tests run it too.
//!
//! Requests are handled strictly one at a time, in arrival order, and one
//! whose worker has given up before its turn is not applied (`queue`);
//! every KV call times out (`timeout`).
//!
//! The KV replica is brought up to date through the state's outbox
//! (`machine::Outbox`): a change is saved with its replica writes queued,
//! in one storage write, and only then are they applied to KV; what KV
//! refuses stays queued, and is retried by the next request or by the
//! alarm, with a backoff, until KV accepts it. So a change that was saved
//! is always finished, even across a failed KV call or a restart of the
//! object. Nothing is written when nothing changed, and an empty state
//! never is.

use std::cell::RefCell;
use std::collections::HashMap;

use serde::Serialize;

use super::machine::{Context, Pending, Rules, Step, UserState};
use super::protocol::{
    read_envelope, reply_in, ReadUser, Request, RevokeAll, Unread, Version, NEWER_WIRE_STATUS,
};
use super::queue::Serial;
use super::timeout::{with_timeout, Timed, Timer, KV_TIMEOUT_MS, STORAGE_TIMEOUT_MS};
use crate::config::Config;
use crate::ids::{OpenId, SessionId};
use crate::phone::Phone;
use crate::store::{allow_key, put_json, replica_key, Store, StoreError};

/// Where an authority keeps its state (Durable Object storage).
#[allow(async_fn_in_trait)] // used with concrete types only; no Send bound wanted on wasm
pub(crate) trait StateStore {
    /// The saved state, as saved.
    async fn load(&self) -> Result<Option<String>, StoreError>;
    /// Saves `state` at once (one write: all or nothing), then asks to be
    /// woken at `alarm_ms` (ms since the epoch, as `setAlarm` takes it) to
    /// forget expired sessions and retry the outbox: best effort, a missed
    /// alarm only delays what the next request also does.
    async fn save(&self, state: &str, alarm_ms: Option<i64>) -> Result<(), StoreError>;
}

/// Grace for the previous refresh token: the contract's 10 seconds.
pub(crate) const REFRESH_GRACE: i64 = 10;

/// An authority's answer to a worker, as HTTP: a status and a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answered {
    pub(crate) status: u16,
    pub(crate) body: String,
}

impl Answered {
    /// A refusal or failure, with a word of text for whoever reads logs.
    pub(crate) fn error(status: u16, body: &str) -> Self {
        Answered {
            status,
            body: body.to_string(),
        }
    }
}

/// One authority at one instant.
pub(crate) struct Server<'a, St, K, Tm> {
    pub(crate) state: &'a St,
    pub(crate) kv: &'a K,
    pub(crate) timer: &'a Tm,
    pub(crate) cfg: &'a Config,
    pub(crate) serial: &'a Serial,
    /// When this object last wrote each replica key.
    pub(crate) pacing: &'a Pacing,
}

impl<St: StateStore, K: Store, Tm: Timer> Server<'_, St, K, Tm> {
    fn rules(&self) -> Rules {
        Rules {
            refresh_ttl: self.cfg.refresh_ttl_secs(),
            max_age: self.cfg.session_max_age_secs(),
            grace: REFRESH_GRACE,
        }
    }

    /// KV as the authority uses it: every call times out.
    fn timed_kv(&self) -> Timed<&K, &Tm> {
        Timed {
            kv: self.kv,
            timer: self.timer,
            ms: KV_TIMEOUT_MS,
        }
    }

    /// The saved state, and its text as saved (`None`: nothing yet).
    async fn load(&self) -> Result<(UserState, Option<String>), StoreError> {
        match with_timeout(self.timer, STORAGE_TIMEOUT_MS, self.state.load()).await? {
            None => Ok((UserState::default(), None)),
            // A state this version cannot read is a failure, never an empty
            // state: that would forget revocations.
            Some(text) => {
                let state = serde_json::from_str(&text).map_err(|_| StoreError)?;
                Ok((state, Some(text)))
            }
        }
    }

    /// Whether `phone` may be carried: `None` when the allowlist is off.
    async fn listed(&self, phone: Option<&Phone>) -> Result<Option<bool>, StoreError> {
        match phone {
            Some(p) if self.cfg.phone_allowlist => {
                Ok(Some(self.timed_kv().get(&allow_key(p)).await?.is_some()))
            }
            _ => Ok(None),
        }
    }

    /// Handles one request as it came over the wire: 200 with the reply
    /// (in the request's wire version), 501 ([`NEWER_WIRE_STATUS`]) for a
    /// request of a newer wire version than this code, 400 for anything
    /// else it cannot read, 503 when storage or KV failed or timed out,
    /// 504 when its worker's deadline passed before its turn came (not
    /// applied).
    pub(crate) async fn answer(&self, body: &str, now: i64) -> Answered {
        let envelope = match read_envelope(body) {
            Ok(envelope) => envelope,
            Err(Unread::Newer(_)) => {
                return Answered::error(NEWER_WIRE_STATUS, "wire version newer than this authority")
            }
            Err(Unread::Malformed) => return Answered::error(400, "bad request"),
        };
        let Ok(_turn) = self
            .serial
            .turn_before(envelope.deadline_ms, self.timer)
            .await
        else {
            return Answered::error(504, "deadline passed");
        };
        let version = envelope.v;
        match self
            .handle(version, &envelope.openid, envelope.request, now)
            .await
        {
            Ok(reply) => Answered {
                status: 200,
                body: reply,
            },
            Err(StoreError) => Answered::error(503, "storage unavailable"),
        }
    }

    /// Handles one request: its reply, as JSON in `version`.
    async fn handle(
        &self,
        version: Version,
        openid: &OpenId,
        request: Request,
        now: i64,
    ) -> Result<String, StoreError> {
        let (mut state, saved) = self.load().await?;
        let mut run = Run {
            server: self,
            state: &mut state,
            saved,
            openid,
            now,
        };
        match request {
            Request::Login(r) => {
                let listed = self.listed(run.state.user_phone()).await?;
                json(version, &run.commit(r, listed).await?)
            }
            Request::Refresh(r) => {
                let listed = self.listed(run.state.user_phone()).await?;
                json(version, &run.commit(r, listed).await?)
            }
            Request::Logout(r) => json(version, &run.commit(r, None).await?),
            Request::RevokeAll => json(version, &run.commit(RevokeAll, None).await?),
            Request::CheckSession(r) => json(version, &run.commit(r, None).await?),
            Request::ReadUser => json(version, &run.commit(ReadUser, None).await?),
            Request::BindPhone(r) => {
                let listed = self.listed(Some(&r.phone)).await?;
                json(version, &run.commit(r, listed).await?)
            }
            Request::BindEncrypted(r) => json(version, &run.bind_encrypted(r).await?),
            Request::SignLatest(r) => json(version, &run.commit(r, None).await?),
            Request::ReplaceKey(r) => json(version, &run.commit(r, None).await?),
            Request::OpenData(r) => json(version, &run.open_data(r).await?),
        }
    }

    /// Applies the outbox to KV, in order, removing what KV accepted; at
    /// the first refusal stops and schedules the retry (the alarm's
    /// backoff). `true` when nothing is left.
    async fn drain(&self, state: &mut UserState, now: i64) -> bool {
        for (sid, entry) in state.outbox.entries() {
            if self.write_replica(&sid, &entry, now).await.is_err() {
                state.outbox.failed(now);
                return false;
            }
            state.outbox.accepted(&sid, &entry);
        }
        true
    }

    /// One replica write, spaced from the previous write of the same key
    /// (KV allows one a second per key).
    async fn write_replica(
        &self,
        sid: &SessionId,
        entry: &Pending,
        now: i64,
    ) -> Result<(), StoreError> {
        let key = replica_key(sid);
        self.pacing.wait(&key, self.timer).await;
        let written = match entry {
            Pending::Put(replica) => {
                // KV refuses expirations under 60 s.
                let ttl = u64::try_from(replica.expires_at - now).unwrap_or(0).max(60);
                put_json(&self.timed_kv(), &key, replica, Some(ttl)).await
            }
            Pending::Delete => self.timed_kv().delete(&key).await,
        };
        self.pacing.wrote(key, self.timer.now_ms());
        written
    }

    /// Saves `state` if it differs from what was saved (`saved`, updated),
    /// with the alarm it needs. An empty state is never written.
    async fn save(
        &self,
        state: &UserState,
        saved: &mut Option<String>,
        now: i64,
    ) -> Result<(), StoreError> {
        let text = serde_json::to_string(state).map_err(|_| StoreError)?;
        let unchanged = match saved {
            Some(before) => *before == text,
            None => state.is_empty(),
        };
        if unchanged {
            return Ok(());
        }
        with_timeout(
            self.timer,
            STORAGE_TIMEOUT_MS,
            self.state.save(&text, state.alarm_ms(now)),
        )
        .await?;
        *saved = Some(text);
        Ok(())
    }

    /// The alarm: forgets expired sessions (queueing their replicas'
    /// deletes) and drains the outbox; an error when KV still refuses
    /// (the retry is scheduled).
    pub(crate) async fn alarm(&self, now: i64) -> Result<(), StoreError> {
        let _turn = self.serial.turn().await;
        let (mut state, mut saved) = self.load().await?;
        state.prune(now);
        self.save(&state, &mut saved, now).await?;
        let drained = self.drain(&mut state, now).await;
        self.save(&state, &mut saved, now).await?;
        if drained {
            Ok(())
        } else {
            Err(StoreError)
        }
    }
}

/// When each replica key was last written, in ms (kept in memory, per
/// object): KV allows one write a second per key, so a write sooner
/// waits out the rest of the second. Forgotten on a restart, when a
/// refused write simply stays in the outbox for the alarm.
#[derive(Default)]
pub(crate) struct Pacing(RefCell<HashMap<String, i64>>);

/// The least spacing of two writes to one KV key, in ms.
pub(crate) const KV_KEY_SPACING_MS: i64 = 1_000;

impl Pacing {
    async fn wait<Tm: Timer>(&self, key: &str, timer: &Tm) {
        let last = self.0.borrow().get(key).copied();
        if let Some(last) = last {
            let left = KV_KEY_SPACING_MS - (timer.now_ms() - last);
            if left > 0 {
                timer.sleep(u32::try_from(left).unwrap_or(0)).await;
            }
        }
    }

    fn wrote(&self, key: String, at: i64) {
        let mut times = self.0.borrow_mut();
        times.retain(|_, t| at - *t < KV_KEY_SPACING_MS);
        times.insert(key, at);
    }
}

fn json(version: Version, reply: &impl Serialize) -> Result<String, StoreError> {
    reply_in(version, reply).map_err(|_| StoreError)
}

/// One request's work on the loaded state.
struct Run<'r, 'a, St, K, Tm> {
    server: &'r Server<'a, St, K, Tm>,
    state: &'r mut UserState,
    /// The state's text as last saved.
    saved: Option<String>,
    openid: &'r OpenId,
    now: i64,
}

impl<St: StateStore, K: Store, Tm: Timer> Run<'_, '_, St, K, Tm> {
    /// Applies `step`; saves the state with its replica changes queued
    /// (one write, only if anything changed), then drains the outbox into
    /// KV and saves what KV accepted — all before the answer goes out. A
    /// change whose replica KV refused is kept and answers the error (the
    /// alarm retries it; so does any next request), unless its reply must
    /// stand regardless ([`Step::stands_without_replica`]: a read, a
    /// refresh's pair). A read drains only when a retry is due.
    async fn commit<S: Step>(
        &mut self,
        step: S,
        phone_listed: Option<bool>,
    ) -> Result<S::Reply, StoreError> {
        let at = Context {
            openid: self.openid,
            now: self.now,
            rules: self.server.rules(),
            phone_listed,
        };
        let (reply, _) = self.state.apply(step, &at);
        let server = self.server;
        server.save(self.state, &mut self.saved, self.now).await?;
        if S::READS_ONLY && !self.state.outbox.due(self.now) {
            return Ok(reply);
        }
        let drained = server.drain(self.state, self.now).await;
        server.save(self.state, &mut self.saved, self.now).await?;
        if drained || S::stands_without_replica(&reply) {
            Ok(reply)
        } else {
            Err(StoreError)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{test_config, MemoryState, MemoryStore, YieldTimer};

    /// Storage whose state is not one this version can read.
    struct Unreadable;

    impl StateStore for Unreadable {
        async fn load(&self) -> Result<Option<String>, StoreError> {
            Ok(Some("{\"sessions\": 7}".into()))
        }
        async fn save(&self, _: &str, _: Option<i64>) -> Result<(), StoreError> {
            Ok(())
        }
    }

    /// `body` answered by an authority with `state` as its storage.
    fn answer_with(state: &impl StateStore, body: &str) -> Answered {
        let cfg = test_config();
        let server = Server {
            state,
            kv: &MemoryStore::default(),
            timer: &YieldTimer,
            cfg: &cfg,
            serial: &Serial::default(),
            pacing: &Pacing::default(),
        };
        pollster::block_on(server.answer(body, 1_764_000_000))
    }

    /// What the Durable Object answers, decided here: 200 and the reply,
    /// 400 for a request of another wire version, 503 when its storage
    /// fails (never an empty state that would forget revocations).
    #[test]
    fn the_answer_says_what_became_of_the_request() {
        use crate::authority::protocol::{Envelope, ReadUser};
        let request = serde_json::to_string(&Envelope::new(OpenId::new("o1"), ReadUser, i64::MAX))
            .expect("serializes");
        let memory = MemoryState::default();
        assert_eq!(
            answer_with(&memory, &request),
            Answered {
                status: 200,
                body: r#"{"user":null,"live_sessions":0}"#.into()
            }
        );
        let old = r#"{"openid":"o1","op":"info"}"#;
        assert_eq!(answer_with(&memory, old).status, 400);
        assert_eq!(answer_with(&memory, "").status, 400);
        assert_eq!(
            answer_with(&Unreadable, &request),
            Answered::error(503, "storage unavailable")
        );
    }
}

// Open data: the legacy phone, and any other.
#[path = "server/open.rs"]
mod open;

// The outbox's own tests: KV failing, restarts, KV's write rate.
#[cfg(test)]
#[path = "server/tests.rs"]
mod outbox_tests;
