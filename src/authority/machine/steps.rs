//! Each operation as a step of the machine: what it changes, what it
//! answers, what the replica must learn.

use super::MAX_FAILED_DECRYPTS;
use super::{
    carried_phone, Context, Effect, Effects, Replica, SessionState, Step, UserRecord, UserState,
};
use crate::authority::protocol::{
    BindDenied, BindPhone, Bound, CheckSession, Login, Logout, ReadUser, Refresh, RefreshDenied,
    Refreshed, RevokeAll, SessionEnded, SessionView, UserSummary,
};
use crate::ids::SessionId;

/// A legacy decryption under this session's key failed (counted: the
/// fifth revokes the session). Made by the server, never sent.
#[derive(Debug, Clone)]
pub(crate) struct DecryptFailed {
    pub(crate) sid: SessionId,
}

impl Step for Login {
    type Reply = SessionView;

    fn apply(self, state: &mut UserState, at: &Context<'_>, effects: &mut Effects) -> SessionView {
        let (openid, now, rules) = (at.openid, at.now, at.rules);
        let user = state
            .user
            .get_or_insert_with(|| UserRecord::new(openid, now));
        if self.unionid.is_some() {
            user.unionid.clone_from(&self.unionid);
        }
        user.last_login_at = now;
        user.last_login_ip = self.ip;
        user.login_count = user.login_count.saturating_add(1);
        let session = SessionState {
            session_key: self.session_key,
            unionid: user.unionid.clone(),
            phone: carried_phone(user.phone.as_ref(), at.phone_listed),
            created_at: now,
            issued_at: now,
            phone_at: None,
            expires_at: now.saturating_add(rules.refresh_ttl.min(rules.max_age)),
            refresh_hash: self.refresh_hash,
            prev_hash: None,
            sealed_current: None,
            retired: Vec::new(),
            revoked_at: None,
            failed_decrypts: 0,
            key_replaced_at: None,
        };
        effects.push(Effect::Put(self.sid.clone(), Replica::of(openid, &session)));
        let view = session.view(openid);
        state.sessions.insert(self.sid.clone(), session);
        state.cap_sessions(&self.sid, now, effects);
        view
    }
}

impl Step for Refresh {
    type Reply = Result<Refreshed, RefreshDenied>;

    /// A rotated or repeated pair: the rotation is saved, and the replica
    /// it left (the previous expiry, still ahead) keeps the session usable
    /// at the edge until the outbox catches up.
    fn stands_without_replica(reply: &Self::Reply) -> bool {
        reply.is_ok()
    }

    fn apply(self, state: &mut UserState, at: &Context<'_>, effects: &mut Effects) -> Self::Reply {
        let (openid, now, rules) = (at.openid, at.now, at.rules);
        let user_phone = state.user_phone().cloned();
        let Some(s) = state.live_session(&self.sid, now) else {
            return Err(RefreshDenied::InvalidRefreshToken);
        };
        let presented = self.presented_hash;
        if presented == s.refresh_hash {
            s.rotate(self.next_hash, Some(self.next_sealed), now);
            let cap = s.created_at.saturating_add(rules.max_age);
            s.expires_at = now.saturating_add(rules.refresh_ttl).min(cap);
            // The user record is the phone's home: a phone bound from
            // another device reaches this session at its next refresh.
            if let Some(p) = carried_phone(user_phone.as_ref(), at.phone_listed) {
                s.phone = Some(p);
            } else if at.phone_listed == Some(false) {
                s.phone = None;
            }
            effects.push(Effect::Put(self.sid, Replica::of(openid, s)));
            return Ok(Refreshed::Rotated(s.view(openid)));
        }
        let is_prev = s.prev_hash.as_ref() == Some(&presented);
        if is_prev && now - s.issued_at <= rules.grace {
            // Presented again right after it was rotated (a lost response,
            // a retry): the same pair, never another rotation.
            return match &s.sealed_current {
                Some(sealed) => Ok(Refreshed::Repeated {
                    session: s.view(openid),
                    sealed: sealed.clone(),
                }),
                // Rotated by a phone binding (state saved before bindings
                // stopped rotating): its owner has the new pair.
                None => Err(RefreshDenied::InvalidRefreshToken),
            };
        }
        let is_retired = s.retired.contains(&presented);
        if is_prev || is_retired {
            // A rotated token came back: someone else holds a copy. End
            // the session for everyone.
            s.revoke(&self.sid, now, effects);
            return Err(RefreshDenied::RefreshReused);
        }
        Err(RefreshDenied::InvalidRefreshToken)
    }
}

impl Step for Logout {
    type Reply = ();

    fn apply(self, state: &mut UserState, at: &Context<'_>, effects: &mut Effects) {
        if let Some(s) = state.sessions.get_mut(&self.sid) {
            s.revoke(&self.sid, at.now, effects);
        }
    }
}

impl Step for RevokeAll {
    /// How many sessions were live (or expired, not yet forgotten) and are
    /// now revoked.
    type Reply = usize;

    fn apply(self, state: &mut UserState, at: &Context<'_>, effects: &mut Effects) -> usize {
        let mut revoked = 0;
        for (sid, s) in &mut state.sessions {
            if s.revoke(sid, at.now, effects) {
                revoked += 1;
            }
        }
        revoked
    }
}

impl Step for BindPhone {
    type Reply = Result<Bound, BindDenied>;

    fn apply(self, state: &mut UserState, at: &Context<'_>, effects: &mut Effects) -> Self::Reply {
        let (openid, now) = (at.openid, at.now);
        if at.phone_listed == Some(false) {
            return Err(BindDenied::NotInternalUser);
        }
        let Some(s) = state.live_session(&self.sid, now) else {
            return Err(BindDenied::SessionRevoked);
        };
        // No rotation: the refresh hashes, the sealed pair and `issued_at`
        // stay as they are, so the token the client holds stays current.
        s.phone = Some(self.phone.clone());
        s.phone_at = Some(now);
        effects.push(Effect::Put(self.sid, Replica::of(openid, s)));
        let session = s.view(openid);
        let user = state
            .user
            .get_or_insert_with(|| UserRecord::new(openid, now));
        user.phone = Some(self.phone.clone());
        user.phone_bound_at = Some(now);
        Ok(Bound {
            phone: self.phone,
            session,
        })
    }
}

impl Step for DecryptFailed {
    type Reply = ();

    fn apply(self, state: &mut UserState, at: &Context<'_>, effects: &mut Effects) {
        if let Some(s) = state.sessions.get_mut(&self.sid) {
            s.failed_decrypts = s.failed_decrypts.saturating_add(1);
            if s.failed_decrypts >= MAX_FAILED_DECRYPTS {
                s.revoke(&self.sid, at.now, effects);
            }
        }
    }
}

impl Step for CheckSession {
    type Reply = Result<SessionView, SessionEnded>;
    const READS_ONLY: bool = true;

    fn apply(self, state: &mut UserState, at: &Context<'_>, _: &mut Effects) -> Self::Reply {
        match state.sessions.get(&self.sid) {
            Some(s) if s.is_live(at.now) => Ok(s.view(at.openid)),
            _ => Err(SessionEnded),
        }
    }
}

impl Step for ReadUser {
    type Reply = UserSummary;
    const READS_ONLY: bool = true;

    fn apply(self, state: &mut UserState, at: &Context<'_>, _: &mut Effects) -> UserSummary {
        UserSummary {
            user: state.user.clone(),
            live_sessions: state
                .sessions
                .values()
                .filter(|s| s.is_live(at.now))
                .count(),
        }
    }
}
