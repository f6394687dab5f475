//! The session authority as a pure state machine: one user's record and
//! sessions, and a function from (state, change, time) to a new state, a
//! reply and the effects on the KV replica.
//!
//! Design choices:
//! - Everything that decides is here, synchronous and without I/O; the
//!   server around it (`super::server`) loads the state, gathers what a
//!   change needs from outside (the allowlist, the session_key's
//!   decryption), applies it, saves, and performs the effects.
//! - A revoked session is kept, marked, until the expiry it had when it was
//!   revoked: a late request for it finds the mark, never an empty slot that
//!   something could fill again.
//! - Refresh secrets never enter the authority: it keeps hashes, and on
//!   rotation the new secret sealed under the previous one, which only the
//!   holder of the previous token can open.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{OpenId, SessionId, UnionId};
use crate::phone::Phone;
use crate::secret::{ct_eq, SessionKey};

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
    /// When the current token pair was issued (login, rotation, binding).
    pub(crate) issued_at: i64,
    /// Sliding expiry, capped by `created_at + max_age`.
    pub(crate) expires_at: i64,
    /// Hash of the current refresh token.
    pub(crate) refresh_hash: String,
    /// The token it replaced: presented again within the grace it yields
    /// the current one, sealed below.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) prev_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) sealed_current: Option<String>,
    /// Older hashes: presenting one of them is reuse.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) retired: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) revoked_at: Option<i64>,
    #[serde(default)]
    pub(crate) failed_decrypts: u32,
}

impl SessionState {
    fn is_live(&self, now: i64) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }

    /// Makes `next_hash` current; the replaced hash stays the "previous"
    /// one (with `sealed_current` for the grace), the one before it retires.
    fn rotate(&mut self, next_hash: String, sealed_current: Option<String>, now: i64) {
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
}

/// A change (or a read) the authority is asked to make. What the server
/// learned from outside rides along (`phone_listed`, a decrypted phone).
#[derive(Debug, Clone)]
pub(crate) enum Change {
    /// A login: a new session.
    Login {
        sid: SessionId,
        session_key: SessionKey,
        unionid: Option<UnionId>,
        refresh_hash: String,
        ip: Option<String>,
        /// Whether the user's bound phone is (still) on the allowlist:
        /// `None` when the allowlist is off or there is no phone.
        phone_listed: Option<bool>,
    },
    /// A refresh: rotate, hand out the same pair again, or detect reuse.
    Refresh {
        sid: SessionId,
        presented_hash: String,
        next_hash: String,
        next_sealed: String,
        phone_listed: Option<bool>,
    },
    /// Logout: revoke one session.
    Logout { sid: SessionId },
    /// An operator's revoke: every session of the user.
    RevokeAll,
    /// A phone WeChat vouched for, to bind; the pair is rotated.
    BindPhone {
        sid: SessionId,
        phone: Phone,
        next_hash: String,
    },
    /// A legacy decryption under this session's key failed.
    DecryptFailed { sid: SessionId },
    /// Is this session live? (`SESSION_CHECK=authority`, `/auth/session`.)
    Check { sid: SessionId },
    /// The operator's view of the user.
    Info,
}

/// What a session looks like from outside: no key, no hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SessionView {
    pub(crate) openid: OpenId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) unionid: Option<UnionId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) phone: Option<Phone>,
    pub(crate) created_at: i64,
    pub(crate) expires_at: i64,
    /// When the current pair was issued: access tokens are issued at this
    /// instant, so a pair handed out twice is the same pair.
    pub(crate) issued_at: i64,
}

/// The refresh token of an issued pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Handout {
    /// The caller's own new token is now current.
    New,
    /// The pair already issued: the current token sealed under the one
    /// presented (the caller opens it).
    Sealed(String),
}

/// A successful reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Outcome {
    Issued {
        view: SessionView,
        refresh: Handout,
    },
    Live(SessionView),
    Revoked {
        revoked: usize,
    },
    Info {
        user: Option<UserRecord>,
        live_sessions: usize,
    },
    Done,
}

/// Why a change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Refusal {
    /// Unknown, expired, revoked, or a token the rules do not honour.
    InvalidRefreshToken,
    /// A rotated token came back: the session is now revoked.
    RefreshReused,
    /// The session is gone (logged out, revoked, expired).
    SessionRevoked,
    /// The phone is not on the staff allowlist.
    NotInternalUser,
}

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
}

/// The result of one change.
pub(crate) type Reply = Result<Outcome, Refusal>;

impl UserState {
    // One arm per change, each short; splitting the match would only hide
    // the table.
    #[allow(clippy::too_many_lines)]
    /// Applies `change` at `now`. The state is changed only as the reply
    /// says; `effects` lists what the replica must learn, in order.
    pub(crate) fn apply(
        &mut self,
        openid: &OpenId,
        change: Change,
        now: i64,
        rules: &Rules,
    ) -> (Reply, Vec<Effect>) {
        let mut effects = self.prune(now);
        let reply = match change {
            Change::Login {
                sid,
                session_key,
                unionid,
                refresh_hash,
                ip,
                phone_listed,
            } => {
                let user = self
                    .user
                    .get_or_insert_with(|| UserRecord::new(openid, now));
                if unionid.is_some() {
                    user.unionid.clone_from(&unionid);
                }
                user.last_login_at = now;
                user.last_login_ip = ip;
                user.login_count = user.login_count.saturating_add(1);
                let phone = carried_phone(user.phone.as_ref(), phone_listed);
                let session = SessionState {
                    session_key,
                    unionid: user.unionid.clone(),
                    phone,
                    created_at: now,
                    issued_at: now,
                    expires_at: now.saturating_add(rules.refresh_ttl.min(rules.max_age)),
                    refresh_hash,
                    prev_hash: None,
                    sealed_current: None,
                    retired: Vec::new(),
                    revoked_at: None,
                    failed_decrypts: 0,
                };
                effects.push(Effect::Put(sid.clone(), replica(openid, &session)));
                self.sessions.insert(sid.clone(), session);
                effects.extend(self.cap_sessions(&sid, now));
                Ok(self.issued(openid, &sid, Handout::New))
            }
            Change::Refresh {
                sid,
                presented_hash,
                next_hash,
                next_sealed,
                phone_listed,
            } => self.refresh(
                openid,
                &sid,
                &presented_hash,
                next_hash,
                next_sealed,
                phone_listed,
                now,
                rules,
                &mut effects,
            ),
            Change::Logout { sid } => {
                if let Some(s) = self.sessions.get_mut(&sid) {
                    if s.revoked_at.is_none() {
                        s.revoked_at = Some(now);
                        effects.push(Effect::Delete(sid));
                    }
                }
                Ok(Outcome::Done)
            }
            Change::RevokeAll => {
                let mut revoked = 0;
                for (sid, s) in &mut self.sessions {
                    if s.revoked_at.is_none() {
                        s.revoked_at = Some(now);
                        effects.push(Effect::Delete(sid.clone()));
                        revoked += 1;
                    }
                }
                Ok(Outcome::Revoked { revoked })
            }
            Change::BindPhone {
                sid,
                phone,
                next_hash,
            } => match self.sessions.get_mut(&sid) {
                Some(s) if s.is_live(now) => {
                    s.rotate(next_hash, None, now);
                    s.phone = Some(phone.clone());
                    effects.push(Effect::Put(sid.clone(), replica(openid, s)));
                    let user = self
                        .user
                        .get_or_insert_with(|| UserRecord::new(openid, now));
                    user.phone = Some(phone);
                    user.phone_bound_at = Some(now);
                    Ok(self.issued(openid, &sid, Handout::New))
                }
                _ => Err(Refusal::SessionRevoked),
            },
            Change::DecryptFailed { sid } => {
                if let Some(s) = self.sessions.get_mut(&sid) {
                    s.failed_decrypts = s.failed_decrypts.saturating_add(1);
                    if s.failed_decrypts >= MAX_FAILED_DECRYPTS && s.revoked_at.is_none() {
                        s.revoked_at = Some(now);
                        effects.push(Effect::Delete(sid));
                    }
                }
                Ok(Outcome::Done)
            }
            Change::Check { sid } => match self.sessions.get(&sid) {
                Some(s) if s.is_live(now) => Ok(Outcome::Live(view(openid, s))),
                _ => Err(Refusal::SessionRevoked),
            },
            Change::Info => Ok(Outcome::Info {
                user: self.user.clone(),
                live_sessions: self.sessions.values().filter(|s| s.is_live(now)).count(),
            }),
        };
        (reply, effects)
    }

    #[allow(clippy::too_many_arguments)] // the fields of Change::Refresh
    fn refresh(
        &mut self,
        openid: &OpenId,
        sid: &SessionId,
        presented: &str,
        next_hash: String,
        next_sealed: String,
        phone_listed: Option<bool>,
        now: i64,
        rules: &Rules,
        effects: &mut Vec<Effect>,
    ) -> Reply {
        let user_phone = self.user.as_ref().and_then(|u| u.phone.clone());
        let Some(s) = self.sessions.get_mut(sid) else {
            return Err(Refusal::InvalidRefreshToken);
        };
        if !s.is_live(now) {
            return Err(Refusal::InvalidRefreshToken);
        }
        if ct_eq(presented.as_bytes(), s.refresh_hash.as_bytes()) {
            s.rotate(next_hash, Some(next_sealed), now);
            let cap = s.created_at.saturating_add(rules.max_age);
            s.expires_at = now.saturating_add(rules.refresh_ttl).min(cap);
            // The user record is the phone's home: a phone bound from
            // another device reaches this session at its next refresh.
            if let Some(p) = carried_phone(user_phone.as_ref(), phone_listed) {
                s.phone = Some(p);
            } else if phone_listed == Some(false) {
                s.phone = None;
            }
            effects.push(Effect::Put(sid.clone(), replica(openid, s)));
            return Ok(self.issued(openid, sid, Handout::New));
        }
        let is_prev = s
            .prev_hash
            .as_deref()
            .is_some_and(|p| ct_eq(presented.as_bytes(), p.as_bytes()));
        if is_prev && now - s.issued_at <= rules.grace {
            // Presented again right after it was rotated (a lost response,
            // a retry): the same pair, never another rotation.
            return match s.sealed_current.clone() {
                Some(sealed) => Ok(self.issued(openid, sid, Handout::Sealed(sealed))),
                // Replaced by a phone binding: its owner has the new pair.
                None => Err(Refusal::InvalidRefreshToken),
            };
        }
        let is_retired = s
            .retired
            .iter()
            .any(|r| ct_eq(presented.as_bytes(), r.as_bytes()));
        if is_prev || is_retired {
            // A rotated token came back: someone else holds a copy. End
            // the session for everyone.
            s.revoked_at = Some(now);
            effects.push(Effect::Delete(sid.clone()));
            return Err(Refusal::RefreshReused);
        }
        Err(Refusal::InvalidRefreshToken)
    }

    fn issued(&self, openid: &OpenId, sid: &SessionId, refresh: Handout) -> Outcome {
        match self.sessions.get(sid) {
            Some(s) => Outcome::Issued {
                view: view(openid, s),
                refresh,
            },
            // Every caller has just inserted or found the session.
            None => Outcome::Done,
        }
    }

    /// Forgets sessions past their expiry (revoked ones too: by then their
    /// tokens are dead on their own).
    pub(crate) fn prune(&mut self, now: i64) -> Vec<Effect> {
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
    fn cap_sessions(&mut self, keep: &SessionId, now: i64) -> Vec<Effect> {
        let mut live: Vec<(i64, SessionId)> = self
            .sessions
            .iter()
            .filter(|(sid, s)| s.is_live(now) && *sid != keep)
            .map(|(sid, s)| (s.created_at, sid.clone()))
            .collect();
        let excess = (live.len() + 1).saturating_sub(MAX_SESSIONS);
        live.sort();
        let mut effects = Vec::new();
        for (_, sid) in live.into_iter().take(excess) {
            if let Some(s) = self.sessions.get_mut(&sid) {
                s.revoked_at = Some(now);
                effects.push(Effect::Delete(sid));
            }
        }
        effects
    }

    /// The earliest instant at which a session expires, for the alarm.
    pub(crate) fn next_expiry(&self) -> Option<i64> {
        self.sessions.values().map(|s| s.expires_at).min()
    }

    /// The session's key, if the session is live (for legacy decryption).
    pub(crate) fn live_key(&self, sid: &SessionId, now: i64) -> Option<&SessionKey> {
        self.sessions
            .get(sid)
            .filter(|s| s.is_live(now))
            .map(|s| &s.session_key)
    }

    /// The user's bound phone, for the allowlist check before a change.
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

fn view(openid: &OpenId, s: &SessionState) -> SessionView {
    SessionView {
        openid: openid.clone(),
        unionid: s.unionid.clone(),
        phone: s.phone.clone(),
        created_at: s.created_at,
        expires_at: s.expires_at,
        issued_at: s.issued_at,
    }
}

fn replica(openid: &OpenId, s: &SessionState) -> Replica {
    Replica {
        openid: openid.clone(),
        unionid: s.unionid.clone(),
        phone: s.phone.clone(),
        expires_at: s.expires_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn phone() -> Phone {
        Phone::for_tests("13800138000", "13800138000", "86")
    }

    fn login(n: u8, hash: &str) -> Change {
        Change::Login {
            sid: sid(n),
            session_key: key(),
            unionid: Some("u1".into()),
            refresh_hash: hash.into(),
            ip: Some("203.0.113.7".into()),
            phone_listed: None,
        }
    }

    fn refresh(n: u8, presented: &str, next: &str) -> Change {
        Change::Refresh {
            sid: sid(n),
            presented_hash: presented.into(),
            next_hash: next.into(),
            next_sealed: format!("sealed:{next}"),
            phone_listed: None,
        }
    }

    /// A state with session 1 logged in at T0 with hash "h0".
    fn one_session() -> UserState {
        let mut st = UserState::default();
        let (reply, _) = st.apply(&user(), login(1, "h0"), T0, &RULES);
        assert!(reply.is_ok());
        st
    }

    /// Every change on a session that is missing, revoked or expired: none
    /// brings it back, none rotates it.
    #[test]
    fn nothing_revives_a_missing_revoked_or_expired_session() {
        let setups: Vec<(&str, UserState, i64)> = vec![
            ("missing", UserState::default(), T0 + 1),
            (
                "revoked",
                {
                    let mut st = one_session();
                    assert!(st
                        .apply(&user(), Change::Logout { sid: sid(1) }, T0 + 1, &RULES)
                        .0
                        .is_ok());
                    st
                },
                T0 + 2,
            ),
            ("expired", one_session(), T0 + 3_600),
        ];
        for (name, st, now) in setups {
            let changes = [
                refresh(1, "h0", "h1"),
                Change::BindPhone {
                    sid: sid(1),
                    phone: phone(),
                    next_hash: "h1".into(),
                },
                Change::Check { sid: sid(1) },
                Change::DecryptFailed { sid: sid(1) },
                Change::Logout { sid: sid(1) },
            ];
            for change in changes {
                let mut st = st.clone();
                let shown = format!("{change:?}");
                let (reply, effects) = st.apply(&user(), change, now, &RULES);
                assert!(
                    matches!(reply, Err(_) | Ok(Outcome::Done)),
                    "{name}: {shown} answered {reply:?}"
                );
                assert!(
                    !effects.iter().any(|e| matches!(e, Effect::Put(..))),
                    "{name}: {shown} wrote a replica"
                );
                if let Some(s) = st.sessions.get(&sid(1)) {
                    assert_eq!(s.refresh_hash, "h0", "{name}: {shown} rotated");
                    assert!(!s.is_live(now), "{name}: {shown} revived");
                }
            }
        }
    }

    #[test]
    fn login_opens_a_session_and_records_the_user() {
        let mut st = UserState::default();
        let (reply, effects) = st.apply(&user(), login(1, "h0"), T0, &RULES);
        let Ok(Outcome::Issued { view, refresh }) = reply else {
            panic!("{reply:?}")
        };
        assert_eq!(refresh, Handout::New);
        assert_eq!(view.issued_at, T0);
        assert_eq!(view.expires_at, T0 + 3_600);
        assert_eq!(effects.len(), 1);
        assert!(
            matches!(&effects[0], Effect::Put(s, r) if *s == sid(1) && r.expires_at == T0 + 3_600)
        );
        let u = st.user.as_ref().expect("user");
        assert_eq!((u.login_count, u.first_login_at), (1, T0));
        assert!(st.apply(&user(), login(2, "x0"), T0 + 5, &RULES).0.is_ok());
        let u = st.user.as_ref().expect("user");
        assert_eq!(
            (u.login_count, u.first_login_at, u.last_login_at),
            (2, T0, T0 + 5)
        );
    }

    #[test]
    fn rotation_grace_and_reuse() {
        let mut st = one_session();
        let (r, _) = st.apply(&user(), refresh(1, "h0", "h1"), T0 + 100, &RULES);
        assert!(matches!(
            r,
            Ok(Outcome::Issued {
                refresh: Handout::New,
                ..
            })
        ));
        // The previous token within the grace: the sealed pair, no rotation.
        for dt in [0, 10] {
            let (r, effects) = st.apply(&user(), refresh(1, "h0", "zz"), T0 + 100 + dt, &RULES);
            let Ok(Outcome::Issued { view, refresh }) = r else {
                panic!("{r:?}")
            };
            assert_eq!(refresh, Handout::Sealed("sealed:h1".into()));
            assert_eq!(view.issued_at, T0 + 100);
            assert!(effects.is_empty());
            assert_eq!(st.sessions[&sid(1)].refresh_hash, "h1");
        }
        // After the grace: reuse, revoked, replica deleted.
        let (r, effects) = st.apply(&user(), refresh(1, "h0", "zz"), T0 + 111, &RULES);
        assert_eq!(r, Err(Refusal::RefreshReused));
        assert_eq!(effects, vec![Effect::Delete(sid(1))]);
        assert_eq!(st.sessions[&sid(1)].revoked_at, Some(T0 + 111));
        // And the current token is dead too.
        let (r, _) = st.apply(&user(), refresh(1, "h1", "h2"), T0 + 112, &RULES);
        assert_eq!(r, Err(Refusal::InvalidRefreshToken));
    }

    #[test]
    fn an_unknown_hash_is_invalid_and_harmless() {
        let mut st = one_session();
        let (r, effects) = st.apply(&user(), refresh(1, "nope", "h1"), T0 + 1, &RULES);
        assert_eq!(r, Err(Refusal::InvalidRefreshToken));
        assert!(effects.is_empty());
        assert!(st.sessions[&sid(1)].is_live(T0 + 1));
        assert_eq!(st.sessions[&sid(1)].refresh_hash, "h0");
    }

    #[test]
    fn refreshes_slide_the_expiry_up_to_the_max_age() {
        let mut st = one_session();
        let mut hash = "h0".to_string();
        let mut t = T0;
        for i in 0..60 {
            t += 3_000;
            let next = format!("h{}", i + 1);
            let (r, _) = st.apply(&user(), refresh(1, &hash, &next), t, &RULES);
            if t >= T0 + 86_400 {
                assert_eq!(r, Err(Refusal::InvalidRefreshToken), "at {t}");
                break;
            }
            let Ok(Outcome::Issued { view, .. }) = r else {
                panic!("at {t}: {r:?}")
            };
            assert_eq!(view.expires_at, (t + 3_600).min(T0 + 86_400));
            hash = next;
        }
    }

    #[test]
    fn revoke_all_ends_every_live_session_and_counts_them() {
        let mut st = one_session();
        assert!(st.apply(&user(), login(2, "x0"), T0 + 1, &RULES).0.is_ok());
        assert!(st.apply(&user(), login(3, "y0"), T0 + 2, &RULES).0.is_ok());
        assert!(st
            .apply(&user(), Change::Logout { sid: sid(3) }, T0 + 3, &RULES)
            .0
            .is_ok());
        let (r, effects) = st.apply(&user(), Change::RevokeAll, T0 + 4, &RULES);
        assert_eq!(r, Ok(Outcome::Revoked { revoked: 2 }));
        assert_eq!(
            effects,
            vec![Effect::Delete(sid(1)), Effect::Delete(sid(2))]
        );
        let (r, _) = st.apply(&user(), Change::Info, T0 + 5, &RULES);
        assert!(matches!(
            r,
            Ok(Outcome::Info {
                live_sessions: 0,
                ..
            })
        ));
        // A new login works.
        let (r, _) = st.apply(&user(), login(4, "z0"), T0 + 6, &RULES);
        assert!(r.is_ok());
    }

    #[test]
    fn binding_rotates_and_records_the_phone_and_later_refreshes_carry_it() {
        let mut st = one_session();
        assert!(st.apply(&user(), login(2, "x0"), T0 + 1, &RULES).0.is_ok());
        let bind = Change::BindPhone {
            sid: sid(1),
            phone: phone(),
            next_hash: "h1".into(),
        };
        let (r, effects) = st.apply(&user(), bind, T0 + 2, &RULES);
        let Ok(Outcome::Issued { view, .. }) = r else {
            panic!("{r:?}")
        };
        assert_eq!(view.phone, Some(phone()));
        assert!(matches!(&effects[0], Effect::Put(_, rep) if rep.phone == Some(phone())));
        assert_eq!(st.user_phone(), Some(&phone()));
        // The other device gets it at its next refresh...
        let (r, _) = st.apply(&user(), refresh(2, "x0", "x1"), T0 + 3, &RULES);
        let Ok(Outcome::Issued { view, .. }) = r else {
            panic!("{r:?}")
        };
        assert_eq!(view.phone, Some(phone()));
        // ...unless the allowlist dropped it.
        let mut dropped = refresh(2, "x1", "x2");
        if let Change::Refresh { phone_listed, .. } = &mut dropped {
            *phone_listed = Some(false);
        }
        let (r, _) = st.apply(&user(), dropped, T0 + 4, &RULES);
        let Ok(Outcome::Issued { view, .. }) = r else {
            panic!("{r:?}")
        };
        assert_eq!(view.phone, None);
    }

    #[test]
    fn five_failed_decryptions_revoke_the_session() {
        let mut st = one_session();
        for i in 1..MAX_FAILED_DECRYPTS {
            let (_, effects) = st.apply(
                &user(),
                Change::DecryptFailed { sid: sid(1) },
                T0 + i64::from(i),
                &RULES,
            );
            assert!(effects.is_empty());
            assert!(st.sessions[&sid(1)].is_live(T0 + 10));
        }
        let (_, effects) = st.apply(
            &user(),
            Change::DecryptFailed { sid: sid(1) },
            T0 + 9,
            &RULES,
        );
        assert_eq!(effects, vec![Effect::Delete(sid(1))]);
        let (r, _) = st.apply(&user(), Change::Check { sid: sid(1) }, T0 + 10, &RULES);
        assert_eq!(r, Err(Refusal::SessionRevoked));
    }

    #[test]
    fn logins_beyond_the_cap_revoke_the_oldest() {
        let mut st = UserState::default();
        for i in 0..=MAX_SESSIONS {
            let n = u8::try_from(i).expect("small");
            let (_, effects) = st.apply(&user(), login(n, "h"), T0 + i64::from(n), &RULES);
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
        assert!(st.apply(&user(), login(2, "x0"), T0 + 10, &RULES).0.is_ok());
        assert!(st
            .apply(&user(), Change::Logout { sid: sid(2) }, T0 + 20, &RULES)
            .0
            .is_ok());
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

    #[test]
    fn the_state_round_trips_through_json_without_the_key_in_clear_view() {
        let st = one_session();
        let text = serde_json::to_string(&st).expect("json");
        let back: UserState = serde_json::from_str(&text).expect("parses");
        assert_eq!(back.sessions[&sid(1)].refresh_hash, "h0");
        assert_eq!(back.sessions[&sid(1)].session_key.bytes(), key().bytes());
        // Nothing the authority answers carries the key.
        let mut st = st;
        let (r, _) = st.apply(&user(), Change::Check { sid: sid(1) }, T0 + 1, &RULES);
        let shown = serde_json::to_string(&r.expect("live")).expect("json");
        assert!(!shown.contains("tiihtN"), "{shown}");
    }
}
