//! One authority's request handling: everything the Durable Object does,
//! with its storage, KV and timer passed in so the host tests run it too.
//!
//! Requests are handled strictly one at a time, in arrival order, and one
//! whose worker has given up before its turn is not applied (`queue`);
//! every KV call times out (`timeout`).

use serde::Serialize;

use super::machine::{Context, DecryptFailed, Effect, Rules, Step, UserState};
use super::protocol::{BindDenied, BindEncrypted, Bound, Envelope, ReadUser, Request, RevokeAll};
use super::queue::Serial;
use super::timeout::{Timed, Timer};
use crate::config::Config;
use crate::ids::OpenId;
use crate::phone::Phone;
use crate::store::{allow_key, put_json, replica_key, Store, StoreError};
use crate::wechat::open_data::OpenDataError;

/// Where an authority keeps its state (Durable Object storage).
#[allow(async_fn_in_trait)] // used with concrete types only; no Send bound wanted on wasm
pub(crate) trait StateStore {
    /// The saved state, as saved.
    async fn load(&self) -> Result<Option<String>, StoreError>;
    /// Saves `state` at once (one write: all or nothing), then asks to be
    /// woken at `alarm_ms` (ms since the epoch, as `setAlarm` takes it) to
    /// forget expired sessions: best effort, a missed alarm only delays
    /// forgetting what has already expired.
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
    fn timed_kv(&self) -> Timed<'_, K, Tm> {
        Timed {
            kv: self.kv,
            timer: self.timer,
        }
    }

    async fn load(&self) -> Result<UserState, StoreError> {
        match self.state.load().await? {
            None => Ok(UserState::default()),
            // A state this version cannot read is a failure, never an empty
            // state: that would forget revocations.
            Some(text) => serde_json::from_str(&text).map_err(|_| StoreError),
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

    /// Handles one request as it came over the wire: 200 with the reply,
    /// 400 for a request this version cannot read (another version of the
    /// wire), 503 when storage or KV failed or timed out, 504 when its
    /// worker's deadline passed before its turn came (not applied).
    pub(crate) async fn answer(&self, body: &str, now: i64) -> Answered {
        let Ok(envelope) = serde_json::from_str::<Envelope>(body) else {
            return Answered::error(400, "bad request");
        };
        let Ok(_turn) = self
            .serial
            .turn_before(envelope.deadline_ms, self.timer)
            .await
        else {
            return Answered::error(504, "deadline passed");
        };
        match self.handle(&envelope.openid, envelope.request, now).await {
            Ok(reply) => Answered {
                status: 200,
                body: reply,
            },
            Err(StoreError) => Answered::error(503, "storage unavailable"),
        }
    }

    /// Handles one request: its reply, as JSON.
    async fn handle(
        &self,
        openid: &OpenId,
        request: Request,
        now: i64,
    ) -> Result<String, StoreError> {
        let mut state = self.load().await?;
        let mut run = Run {
            server: self,
            state: &mut state,
            openid,
            now,
        };
        match request {
            Request::Login(r) => {
                let listed = self.listed(run.state.user_phone()).await?;
                json(&run.commit(r, listed).await?)
            }
            Request::Refresh(r) => {
                let listed = self.listed(run.state.user_phone()).await?;
                json(&run.commit(r, listed).await?)
            }
            Request::Logout(r) => json(&run.commit(r, None).await?),
            Request::RevokeAll => json(&run.commit(RevokeAll, None).await?),
            Request::CheckSession(r) => json(&run.commit(r, None).await?),
            Request::ReadUser => json(&run.commit(ReadUser, None).await?),
            Request::BindPhone(r) => {
                let listed = self.listed(Some(&r.phone)).await?;
                json(&run.commit(r, listed).await?)
            }
            Request::BindEncrypted(r) => json(&run.bind_encrypted(r).await?),
        }
    }

    async fn replicate(&self, effects: Vec<Effect>, now: i64) -> Result<(), StoreError> {
        for effect in effects {
            match effect {
                Effect::Put(sid, replica) => {
                    // KV refuses expirations under 60 s.
                    let ttl = u64::try_from(replica.expires_at - now).unwrap_or(0).max(60);
                    put_json(&self.timed_kv(), &replica_key(&sid), &replica, Some(ttl)).await?;
                }
                Effect::Delete(sid) => self.timed_kv().delete(&replica_key(&sid)).await?,
            }
        }
        Ok(())
    }

    async fn save(&self, state: &UserState, now: i64) -> Result<(), StoreError> {
        let text = serde_json::to_string(state).map_err(|_| StoreError)?;
        self.state.save(&text, state.alarm_ms(now)).await
    }

    /// The alarm: forgets expired sessions (and their replicas).
    pub(crate) async fn alarm(&self, now: i64) -> Result<(), StoreError> {
        let _turn = self.serial.turn().await;
        let mut state = self.load().await?;
        let before = state.sessions.len();
        let effects = state.prune(now);
        if state.sessions.len() != before {
            self.save(&state, now).await?;
        }
        self.replicate(effects, now).await
    }
}

fn json(reply: &impl Serialize) -> Result<String, StoreError> {
    serde_json::to_string(reply).map_err(|_| StoreError)
}

/// One request's work on the loaded state.
struct Run<'r, 'a, St, K, Tm> {
    server: &'r Server<'a, St, K, Tm>,
    state: &'r mut UserState,
    openid: &'r OpenId,
    now: i64,
}

impl<St: StateStore, K: Store, Tm: Timer> Run<'_, '_, St, K, Tm> {
    /// Applies `step`, saves the state if anything changed, then brings
    /// the KV replica up to date — all before the answer goes out.
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
        let before = self.state.sessions.len();
        let (reply, effects) = self.state.apply(step, &at);
        if !S::READS_ONLY || self.state.sessions.len() != before || !effects.is_empty() {
            self.server.save(self.state, self.now).await?;
        }
        self.server.replicate(effects, self.now).await?;
        Ok(reply)
    }

    /// Legacy phone data: opened with the session's key (which never
    /// leaves the authority), then bound as a verified phone. A failed
    /// decryption is counted; five revoke the session.
    async fn bind_encrypted(
        &mut self,
        request: BindEncrypted,
    ) -> Result<Result<Bound, BindDenied>, StoreError> {
        let Some(key) = self.state.live_key(&request.sid, self.now) else {
            return Ok(Err(BindDenied::SessionRevoked));
        };
        match request.encrypted.open(key, self.server.cfg.appid.as_str()) {
            Ok(phone) => {
                let listed = self.server.listed(Some(&phone)).await?;
                self.commit(request.opened(phone), listed).await
            }
            Err(e @ OpenDataError::DecryptFailed) => {
                let sid = request.sid;
                self.commit(DecryptFailed { sid }, None).await?;
                Ok(Err(BindDenied::OpenData(e)))
            }
            Err(e) => Ok(Err(BindDenied::OpenData(e))),
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
