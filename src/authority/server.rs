//! One authority's request handling: everything the Durable Object does,
//! with its storage, KV and timer passed in so the host tests run it too.
//!
//! Requests are handled strictly one at a time ([`Serial`]): a Durable
//! Object only holds back new events while it awaits its *own storage*,
//! not while it awaits KV, so without this a logout could run between a
//! refresh's load and save. Holding the turn across the whole request also
//! keeps the replica writes in the order the changes were made.

use std::cell::Cell;

use super::machine::{Change, Effect, Refusal, Rules, UserState};
use super::{Answer, Denial, Op, Outcome};
use crate::config::Config;
use crate::ids::{OpenId, SessionId};
use crate::phone::Phone;
use crate::store::{allow_key, put_json, replica_key, Store, StoreError};
use crate::wechat::open_data::OpenDataError;

/// Where an authority keeps its state (Durable Object storage).
#[allow(async_fn_in_trait)] // used with concrete types only; no Send bound wanted on wasm
pub(crate) trait StateStore {
    /// The saved state, as saved.
    async fn load(&self) -> Result<Option<String>, StoreError>;
    /// Saves `state` at once (one write: all or nothing), and asks to be
    /// woken at `alarm_at` (Unix seconds) to forget expired sessions.
    async fn save(&self, state: &str, alarm_at: Option<i64>) -> Result<(), StoreError>;
}

/// Waits between looks at a busy turn.
#[allow(async_fn_in_trait)] // used with concrete types only; no Send bound wanted on wasm
pub(crate) trait Timer {
    async fn pause(&self, ms: u32);
}

/// One request at a time (see the module docs).
#[derive(Default)]
pub(crate) struct Serial(Cell<bool>);

struct Turn<'a>(&'a Serial);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.0 .0.set(false);
    }
}

impl Serial {
    async fn turn<T: Timer>(&self, timer: &T) -> Turn<'_> {
        while self.0.get() {
            timer.pause(1).await;
        }
        self.0.set(true);
        Turn(self)
    }
}

/// Grace for the previous refresh token: the contract's 10 seconds.
pub(crate) const REFRESH_GRACE: i64 = 10;

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
                Ok(Some(self.kv.get(&allow_key(p)).await?.is_some()))
            }
            _ => Ok(None),
        }
    }

    /// A phone binding, unless the allowlist refuses the phone.
    async fn binding(
        &self,
        sid: SessionId,
        phone: Phone,
        next_hash: String,
    ) -> Result<Result<Change, Denial>, StoreError> {
        if self.listed(Some(&phone)).await? == Some(false) {
            return Ok(Err(Denial::Refused(Refusal::NotInternalUser)));
        }
        Ok(Ok(Change::BindPhone {
            sid,
            phone,
            next_hash,
        }))
    }

    /// Handles one request from a worker.
    pub(crate) async fn handle(
        &self,
        openid: &OpenId,
        op: Op,
        now: i64,
    ) -> Result<Answer, StoreError> {
        let _turn = self.serial.turn(self.timer).await;
        let mut state = self.load().await?;
        let change = match op {
            Op::Login {
                sid,
                session_key,
                unionid,
                refresh_hash,
                ip,
            } => Change::Login {
                sid,
                session_key,
                unionid,
                refresh_hash,
                ip,
                phone_listed: self.listed(state.user_phone()).await?,
            },
            Op::Refresh {
                sid,
                presented_hash,
                next_hash,
                next_sealed,
            } => Change::Refresh {
                sid,
                presented_hash,
                next_hash,
                next_sealed,
                phone_listed: self.listed(state.user_phone()).await?,
            },
            Op::Logout { sid } => Change::Logout { sid },
            Op::RevokeAll => Change::RevokeAll,
            Op::Check { sid } => Change::Check { sid },
            Op::Info => Change::Info,
            Op::BindPhone {
                sid,
                phone,
                next_hash,
            } => match self.binding(sid, phone, next_hash).await? {
                Ok(change) => change,
                Err(denied) => return Ok(Err(denied)),
            },
            Op::BindEncrypted {
                sid,
                encrypted,
                next_hash,
            } => {
                let Some(key) = state.live_key(&sid, now) else {
                    return Ok(Err(Denial::Refused(Refusal::SessionRevoked)));
                };
                match encrypted.open(key, self.cfg.appid.as_str()) {
                    Ok(phone) => match self.binding(sid, phone, next_hash).await? {
                        Ok(change) => change,
                        Err(denied) => return Ok(Err(denied)),
                    },
                    Err(e @ OpenDataError::DecryptFailed) => {
                        // Counted (five revoke the session); the reply is Done.
                        let _counted = self
                            .commit(&mut state, openid, Change::DecryptFailed { sid }, now)
                            .await?;
                        return Ok(Err(Denial::OpenData(e)));
                    }
                    Err(e) => return Ok(Err(Denial::OpenData(e))),
                }
            }
        };
        let reply = self.commit(&mut state, openid, change, now).await?;
        Ok(reply.map_err(Denial::Refused))
    }

    /// Applies `change`, saves the state if anything changed, then brings
    /// the KV replica up to date — all before the answer goes out.
    async fn commit(
        &self,
        state: &mut UserState,
        openid: &OpenId,
        change: Change,
        now: i64,
    ) -> Result<Result<Outcome, Refusal>, StoreError> {
        let reads_only = matches!(change, Change::Check { .. } | Change::Info);
        let before = state.sessions.len();
        let (reply, effects) = state.apply(openid, change, now, &self.rules());
        if !reads_only || state.sessions.len() != before || !effects.is_empty() {
            let text = serde_json::to_string(&*state).map_err(|_| StoreError)?;
            self.state.save(&text, state.next_expiry()).await?;
        }
        self.replicate(effects, now).await?;
        Ok(reply)
    }

    async fn replicate(&self, effects: Vec<Effect>, now: i64) -> Result<(), StoreError> {
        for effect in effects {
            match effect {
                Effect::Put(sid, replica) => {
                    // KV refuses expirations under 60 s.
                    let ttl = u64::try_from(replica.expires_at - now).unwrap_or(0).max(60);
                    put_json(self.kv, &replica_key(&sid), &replica, Some(ttl)).await?;
                }
                Effect::Delete(sid) => self.kv.delete(&replica_key(&sid)).await?,
            }
        }
        Ok(())
    }

    /// The alarm: forgets expired sessions (and their replicas).
    pub(crate) async fn alarm(&self, now: i64) -> Result<(), StoreError> {
        let _turn = self.serial.turn(self.timer).await;
        let mut state = self.load().await?;
        let before = state.sessions.len();
        let effects = state.prune(now);
        if state.sessions.len() != before {
            let text = serde_json::to_string(&state).map_err(|_| StoreError)?;
            self.state.save(&text, state.next_expiry()).await?;
        }
        self.replicate(effects, now).await
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;
    use std::rc::Rc;

    use super::*;
    use crate::authority::machine::UserState;
    use crate::authority::{AuthorityClient, Envelope};
    use crate::store::tests::MemoryStore;
    use crate::wechat::tests::YieldOnce;

    /// One authority's storage, in memory. With `yields`, every load and
    /// save gives way to the other futures of a join first, as real I/O
    /// would.
    #[derive(Default)]
    pub(crate) struct MemoryState {
        pub(crate) text: RefCell<Option<String>>,
        pub(crate) alarm: Cell<Option<i64>>,
    }

    impl StateStore for MemoryState {
        async fn load(&self) -> Result<Option<String>, StoreError> {
            YieldOnce(false).await;
            Ok(self.text.borrow().clone())
        }
        async fn save(&self, state: &str, alarm_at: Option<i64>) -> Result<(), StoreError> {
            YieldOnce(false).await;
            *self.text.borrow_mut() = Some(state.to_string());
            self.alarm.set(alarm_at);
            Ok(())
        }
    }

    /// A timer that only gives way.
    pub(crate) struct YieldTimer;

    impl Timer for YieldTimer {
        async fn pause(&self, _ms: u32) {
            YieldOnce(false).await;
        }
    }

    #[derive(Default)]
    struct Slot {
        state: MemoryState,
        serial: Serial,
    }

    /// Every user's authority in memory, as the Durable Objects would be:
    /// one slot per openid, each handling its requests one at a time, with
    /// KV (`kv`) as the replica. Requests and answers go through JSON, as
    /// over the wire.
    pub(crate) struct MemoryAuthority {
        pub(crate) kv: Rc<MemoryStore>,
        pub(crate) cfg: Rc<Config>,
        slots: RefCell<HashMap<OpenId, Rc<Slot>>>,
        /// Every call fails (the authority is unreachable).
        pub(crate) fail: Cell<bool>,
        /// How many calls reached an authority.
        pub(crate) calls: Cell<usize>,
    }

    impl MemoryAuthority {
        pub(crate) fn new(kv: Rc<MemoryStore>, cfg: Rc<Config>) -> Self {
            MemoryAuthority {
                kv,
                cfg,
                slots: RefCell::default(),
                fail: Cell::new(false),
                calls: Cell::new(0),
            }
        }

        /// What `openid`'s authority has saved.
        pub(crate) fn state(&self, openid: &OpenId) -> Option<UserState> {
            let slots = self.slots.borrow();
            let text = slots.get(openid)?.state.text.borrow().clone()?;
            Some(serde_json::from_str(&text).expect("saved state parses"))
        }

        /// Every saved state, with its user.
        pub(crate) fn states(&self) -> Vec<(OpenId, UserState)> {
            let ids: Vec<OpenId> = self.slots.borrow().keys().cloned().collect();
            ids.into_iter()
                .filter_map(|id| self.state(&id).map(|s| (id, s)))
                .collect()
        }

        /// Runs `openid`'s alarm at the KV clock's time.
        pub(crate) async fn alarm(&self, openid: &OpenId) -> Result<(), StoreError> {
            let slot = self.slot(openid);
            self.server(&slot).alarm(self.kv.now.get()).await
        }

        /// When `openid`'s authority asked to be woken.
        pub(crate) fn alarm_at(&self, openid: &OpenId) -> Option<i64> {
            self.slots.borrow().get(openid)?.state.alarm.get()
        }

        fn slot(&self, openid: &OpenId) -> Rc<Slot> {
            Rc::clone(self.slots.borrow_mut().entry(openid.clone()).or_default())
        }

        fn server<'a>(
            &'a self,
            slot: &'a Slot,
        ) -> Server<'a, MemoryState, MemoryStore, YieldTimer> {
            Server {
                state: &slot.state,
                kv: &self.kv,
                timer: &YieldTimer,
                cfg: &self.cfg,
                serial: &slot.serial,
            }
        }
    }

    impl AuthorityClient for MemoryAuthority {
        async fn call(&self, openid: &OpenId, op: Op) -> Result<Answer, StoreError> {
            YieldOnce(false).await;
            if self.fail.get() {
                return Err(StoreError);
            }
            self.calls.set(self.calls.get() + 1);
            let wire = serde_json::to_string(&Envelope {
                openid: openid.clone(),
                op,
            })
            .expect("requests serialize");
            let Envelope { openid, op } = serde_json::from_str(&wire).expect("requests parse");
            let slot = self.slot(&openid);
            let answer = self
                .server(&slot)
                .handle(&openid, op, self.kv.now.get())
                .await?;
            let wire = serde_json::to_string(&answer).expect("answers serialize");
            YieldOnce(false).await;
            Ok(serde_json::from_str(&wire).expect("answers parse"))
        }
    }
}
