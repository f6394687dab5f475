//! The session authority as a pure state machine: one user's record and
//! sessions, and a function from (state, step, context) to a new state, a
//! reply and the effects on the KV replica.
//!
//! Design choices:
//! - Everything that decides is here, synchronous and without I/O; the
//!   server around it (`super::server`) loads the state, gathers what a
//!   step needs from outside (the allowlist, the session_key's
//!   decryption), applies it, saves, and performs the effects.
//! - A step is one of the wire's request types (`super::protocol`), applied
//!   as it arrived, and answers that request's own reply type; the one step
//!   that is not on the wire is [`DecryptFailed`] (see `steps`).
//! - A revoked session is kept, marked, until the expiry it had when it was
//!   revoked: a late request for it finds the mark, never an empty slot that
//!   something could fill again.
//! - Refresh secrets never enter the authority: it keeps hashes, and on
//!   rotation the new secret sealed under the previous one, which only the
//!   holder of the previous token can open.
//! - The KV replica follows the state through an outbox saved with it
//!   ([`Outbox`]): every step's effects are queued there, to be saved in
//!   the same write as the change, and stay until KV accepts them. Once
//!   it is drained, KV holds `session:{sid}` exactly for the sessions not
//!   revoked, each as
//!   [`Replica::of`] it (an expired one until the alarm prunes it, which its
//!   own `expires_at` and KV's TTL already make dead to readers). The
//!   property test (`props`) checks this over random sequences of steps.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::protocol::SessionView;
use crate::ids::{OpenId, SessionId, UnionId};
use crate::phone::Phone;
use crate::secret::{RefreshHash, SessionKey};

mod keys;
mod outbox;
mod steps;

pub(crate) use outbox::{Outbox, Pending};
pub(crate) use steps::DecryptFailed;

/// How many superseded refresh-token hashes a session remembers for reuse
/// detection.
pub(crate) const RETIRED_KEPT: usize = 16;
/// Failed legacy decryptions after which a session is revoked.
pub(crate) const MAX_FAILED_DECRYPTS: u32 = 5;
/// Live sessions one user may hold; a login beyond it revokes the oldest.
pub(crate) const MAX_SESSIONS: usize = 32;

/// The rules the configuration sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rules {
    /// `REFRESH_TOKEN_TTL`: how long an unused session lives.
    pub(crate) refresh_ttl: i64,
    /// `SESSION_MAX_AGE`: no refresh extends a session past login + this.
    pub(crate) max_age: i64,
    /// Seconds during which the previous refresh token yields the same pair.
    pub(crate) grace: i64,
}

/// What the worker knows of a user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct UserRecord {
    pub(crate) openid: OpenId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) unionid: Option<UnionId>,
    pub(crate) first_login_at: i64,
    pub(crate) last_login_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) last_login_ip: Option<String>,
    pub(crate) login_count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) phone: Option<Phone>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) phone_bound_at: Option<i64>,
}

impl UserRecord {
    fn new(openid: &OpenId, now: i64) -> Self {
        UserRecord {
            openid: openid.clone(),
            unionid: None,
            first_login_at: now,
            last_login_at: now,
            last_login_ip: None,
            login_count: 0,
            phone: None,
            phone_bound_at: None,
        }
    }
}

/// Everything the authority keeps for one user.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct UserState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) user: Option<UserRecord>,
    #[serde(default)]
    pub(crate) sessions: BTreeMap<SessionId, SessionState>,
    /// Replica changes KV has not yet accepted (absent in a state saved
    /// before the outbox existed, and whenever it is empty).
    #[serde(default, skip_serializing_if = "Outbox::is_empty")]
    pub(crate) outbox: Outbox,
}

/// One login session. `session_key` never leaves the authority.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SessionState {
    pub(crate) session_key: SessionKey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) unionid: Option<UnionId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) phone: Option<Phone>,
    pub(crate) created_at: i64,
    /// When the current token pair was issued (login, rotation).
    pub(crate) issued_at: i64,
    /// When a phone was last bound to this session without a rotation
    /// (absent in a state saved before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) phone_at: Option<i64>,
    /// Sliding expiry, capped by `created_at + max_age`.
    pub(crate) expires_at: i64,
    /// Hash of the current refresh token.
    pub(crate) refresh_hash: RefreshHash,
    /// The token it replaced: presented again within the grace it yields
    /// the current one, sealed below.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) prev_hash: Option<RefreshHash>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) sealed_current: Option<String>,
    /// Older hashes: presenting one of them is reuse.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) retired: Vec<RefreshHash>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) revoked_at: Option<i64>,
    #[serde(default)]
    pub(crate) failed_decrypts: u32,
    /// When `session_key` was last replaced (a reset, a re-key); absent:
    /// it is the login's, set at `created_at` (and in a state saved before
    /// keys were replaced). See [`SessionState::key_at`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) key_replaced_at: Option<i64>,
}

impl SessionState {
    fn is_live(&self, now: i64) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }

    /// Makes `next_hash` current; the replaced hash stays the "previous"
    /// one (with `sealed_current` for the grace), the one before it retires.
    fn rotate(&mut self, next_hash: RefreshHash, sealed_current: Option<String>, now: i64) {
        if let Some(old_prev) = self.prev_hash.take() {
            self.retired.push(old_prev);
            if self.retired.len() > RETIRED_KEPT {
                let excess = self.retired.len() - RETIRED_KEPT;
                self.retired.drain(..excess);
            }
        }
        self.prev_hash = Some(std::mem::replace(&mut self.refresh_hash, next_hash));
        self.sealed_current = sealed_current;
        self.issued_at = now;
    }

    /// Revokes the session now, and tells the replica; `false` if it
    /// already was.
    fn revoke(&mut self, sid: &SessionId, now: i64, effects: &mut Effects) -> bool {
        if self.revoked_at.is_some() {
            return false;
        }
        self.revoked_at = Some(now);
        effects.push(Effect::Delete(sid.clone()));
        true
    }

    fn view(&self, openid: &OpenId) -> SessionView {
        SessionView {
            openid: openid.clone(),
            unionid: self.unionid.clone(),
            phone: self.phone.clone(),
            created_at: self.created_at,
            expires_at: self.expires_at,
            issued_at: self.issued_at,
        }
    }
}

/// What a step is applied with: whose state, when, under which rules, and
/// what the server learned outside.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context<'a> {
    pub(crate) openid: &'a OpenId,
    pub(crate) now: i64,
    pub(crate) rules: Rules,
    /// Whether the phone concerned is on the staff allowlist: the phone
    /// being bound for [`BindPhone`](super::protocol::BindPhone), the
    /// user's bound phone for a login or a refresh. `None` when the
    /// allowlist is off or there is no phone; other steps ignore it.
    pub(crate) phone_listed: Option<bool>,
}

/// One step of the machine and its reply.
pub(crate) trait Step {
    type Reply;
    /// A step that changes nothing itself (the server saves only if the
    /// pruning before it did).
    const READS_ONLY: bool = false;
    /// Applies the step to `state` (already pruned at `at.now`), pushing
    /// what the replica must learn onto `effects`.
    fn apply(self, state: &mut UserState, at: &Context<'_>, effects: &mut Effects) -> Self::Reply;
    /// Whether `reply` goes out although KV refused a replica write (the
    /// outbox keeps it for the alarm). By default a change whose replica
    /// is behind answers "try again"; a refresh's pair must reach its
    /// client all the same, or the client's next refresh, past the grace,
    /// would count as reuse and end the session.
    fn stands_without_replica(_reply: &Self::Reply) -> bool {
        Self::READS_ONLY
    }
}

/// What a step tells the KV replica, in order.
pub(crate) type Effects = Vec<Effect>;

/// What the KV replica must be told, in order, after the state is saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Write `session:{sid}` (read by `SESSION_CHECK=every-request`).
    Put(SessionId, Replica),
    /// Delete `session:{sid}`.
    Delete(SessionId),
}

/// The KV replica of a live session: what a proxied request needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Replica {
    pub(crate) openid: OpenId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) unionid: Option<UnionId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) phone: Option<Phone>,
    pub(crate) expires_at: i64,
    /// The instant its unionid and phone are as of: the last login,
    /// rotation or phone binding. An access token issued later is the
    /// fresher word on them (the proxy compares its `iat`). Absent in a
    /// replica written before it was kept: then the replica is taken as
    /// the fresher.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) as_of: Option<i64>,
}

impl Replica {
    /// The replica of `s`, a session of `openid`.
    pub(crate) fn of(openid: &OpenId, s: &SessionState) -> Self {
        Replica {
            openid: openid.clone(),
            unionid: s.unionid.clone(),
            phone: s.phone.clone(),
            expires_at: s.expires_at,
            as_of: Some(s.phone_at.map_or(s.issued_at, |at| at.max(s.issued_at))),
        }
    }
}

impl UserState {
    /// Applies `step` as `at` says: first forgets what has expired, then
    /// the step. The state is changed only as the reply says; the effects
    /// list what the replica must learn, in order, and are queued in the
    /// outbox.
    pub(crate) fn apply<S: Step>(&mut self, step: S, at: &Context<'_>) -> (S::Reply, Vec<Effect>) {
        let mut effects = self.prune(at.now);
        let mut own = Vec::new();
        let reply = step.apply(self, at, &mut own);
        self.outbox.queue(&own);
        effects.extend(own);
        (reply, effects)
    }

    /// Forgets sessions past their expiry (revoked ones too: by then their
    /// tokens are dead on their own), queueing the delete of each one's
    /// replica. A revoked session's delete was queued when it was revoked
    /// and stays in the outbox until KV accepts it, pruned or not.
    pub(crate) fn prune(&mut self, now: i64) -> Vec<Effect> {
        let effects = self.forget_expired(now);
        self.outbox.queue(&effects);
        effects
    }

    /// Whether there is nothing to keep: no user, no session, nothing
    /// pending (such a state is never written).
    pub(crate) fn is_empty(&self) -> bool {
        self.user.is_none() && self.sessions.is_empty() && self.outbox.is_empty()
    }

    fn forget_expired(&mut self, now: i64) -> Vec<Effect> {
        let mut effects = Vec::new();
        self.sessions.retain(|sid, s| {
            let keep = now < s.expires_at;
            if !keep && s.revoked_at.is_none() {
                effects.push(Effect::Delete(sid.clone()));
            }
            keep
        });
        effects
    }

    /// Revokes the oldest live sessions beyond [`MAX_SESSIONS`] (never
    /// `keep`, the one just made).
    fn cap_sessions(&mut self, keep: &SessionId, now: i64, effects: &mut Effects) {
        let mut live: Vec<(i64, SessionId)> = self
            .sessions
            .iter()
            .filter(|(sid, s)| s.is_live(now) && *sid != keep)
            .map(|(sid, s)| (s.created_at, sid.clone()))
            .collect();
        let excess = (live.len() + 1).saturating_sub(MAX_SESSIONS);
        live.sort();
        for (_, sid) in live.into_iter().take(excess) {
            if let Some(s) = self.sessions.get_mut(&sid) {
                s.revoke(&sid, now, effects);
            }
        }
    }

    /// The earliest instant at which a session expires.
    pub(crate) fn next_expiry(&self) -> Option<i64> {
        self.sessions.values().map(|s| s.expires_at).min()
    }

    /// When the alarm should fire, in ms since the epoch as `setAlarm`
    /// takes it: the earlier of a second after the earliest expiry and the
    /// outbox's next retry, never in the past (a missed alarm only delays
    /// forgetting what has already expired).
    pub(crate) fn alarm_ms(&self, now: i64) -> Option<i64> {
        let expiry = self.next_expiry().map(|at| at.saturating_add(1));
        let at = match (expiry, self.outbox.retry_time(now)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }?;
        Some(at.max(now.saturating_add(1)).saturating_mul(1000))
    }

    /// The session `sid`, if it is live at `now`.
    fn live_session(&mut self, sid: &SessionId, now: i64) -> Option<&mut SessionState> {
        self.sessions.get_mut(sid).filter(|s| s.is_live(now))
    }

    /// The session's key, if the session is live (for legacy decryption).
    pub(crate) fn live_key(&self, sid: &SessionId, now: i64) -> Option<&SessionKey> {
        self.sessions
            .get(sid)
            .filter(|s| s.is_live(now))
            .map(|s| &s.session_key)
    }

    /// The user's bound phone, for the allowlist check before a step.
    pub(crate) fn user_phone(&self) -> Option<&Phone> {
        self.user.as_ref().and_then(|u| u.phone.as_ref())
    }
}

/// The phone a session carries: the user's, unless the allowlist says it
/// has been taken off.
fn carried_phone(phone: Option<&Phone>, listed: Option<bool>) -> Option<Phone> {
    match listed {
        Some(false) => None,
        _ => phone.cloned(),
    }
}

// proptest is host-only (its randomness has no wasm32 backend).
#[cfg(all(test, not(target_arch = "wasm32")))]
mod props;
#[cfg(test)]
mod tests;
