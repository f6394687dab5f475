//! Calls that name a session by its access token: the token check itself,
//! `GET /auth/session` and `POST /auth/logout`.

use serde::Serialize;

use super::replica_cache::{kv_cache_ttl, Keep};
use super::{Edge, Platform};
use crate::authority::{AuthorityClient, CheckSession, Logout, Replica};
use crate::config::SessionCheck;
use crate::error::ApiError;
use crate::http::headers::bearer;
use crate::ids::{OpenId, SessionId, UnionId};
use crate::phone::Phone;
use crate::store::{get_json, get_json_cached, replica_key};
use crate::token::access::{verify_access, verify_access_ignoring_expiry, VerifiedAccess};

/// `GET /auth/session`.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(crate) struct SessionInfo {
    pub(crate) openid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) unionid: Option<UnionId>,
    pub(crate) phone_bound: bool,
    pub(crate) expires_at: i64,
    pub(crate) session_expires_at: i64,
}

/// What a session check found: the session as its source knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LiveSession {
    pub(crate) unionid: Option<UnionId>,
    pub(crate) phone: Option<Phone>,
    pub(crate) expires_at: i64,
    /// The instant the unionid and phone are as of, when the source is a
    /// replica that may lag (KV's edge cache keeps one up to 60 s); `None`
    /// for the authority's word, or a replica too old to say: either counts
    /// as fresher than any token.
    pub(crate) as_of: Option<i64>,
}

/// A request whose access token checked out.
pub(crate) struct Authenticated {
    pub(crate) access: VerifiedAccess,
    /// The session, when it was checked.
    pub(crate) session: Option<LiveSession>,
}

impl<P: Platform> Edge<'_, P> {
    /// Checks `Authorization: Bearer`, then the session where `check` says.
    pub(crate) async fn authenticate(
        &self,
        authorization: Option<&str>,
        check: SessionCheck,
    ) -> Result<Authenticated, ApiError> {
        let token = bearer(authorization).ok_or(ApiError::Unauthorized)?;
        let access = verify_access(
            &self.cfg.token_key,
            self.cfg.appid.as_str(),
            token,
            self.now,
        )?;
        let session = match check {
            SessionCheck::RefreshOnly => None,
            SessionCheck::EveryRequest => Some(self.replica_session(&access).await?),
            SessionCheck::Authority => Some(self.authority_session(&access).await?),
        };
        Ok(Authenticated { access, session })
    }

    /// The session as its KV replica says, or as this isolate heard it
    /// say within `REPLICA_CACHE_SECS` (see `replica_cache`).
    async fn replica_session(&self, access: &VerifiedAccess) -> Result<LiveSession, ApiError> {
        let sid = &access.claims.sid;
        let keep = Keep::secs(self.cfg.replica_cache_secs);
        let replica = if let Some(known) = self.isolate.replicas.get(keep, sid, self.now) {
            known
        } else {
            let key = replica_key(sid);
            let read: Option<Replica> = match kv_cache_ttl(self.cfg.replica_cache_secs) {
                Some(ttl) => get_json_cached(self.store, &key, ttl).await?,
                None => get_json(self.store, &key).await?,
            };
            self.isolate.replicas.put(keep, sid, read.clone(), self.now);
            read
        };
        let r = replica.ok_or(ApiError::SessionRevoked)?;
        if r.openid != access.claims.subject.openid || r.expires_at <= self.now {
            return Err(ApiError::SessionRevoked);
        }
        Ok(LiveSession {
            unionid: r.unionid,
            phone: r.phone,
            expires_at: r.expires_at,
            as_of: r.as_of,
        })
    }

    async fn authority_session(&self, access: &VerifiedAccess) -> Result<LiveSession, ApiError> {
        let check = CheckSession {
            sid: access.claims.sid.clone(),
        };
        let v = self
            .authority
            .call(&access.claims.subject.openid, check)
            .await??;
        Ok(LiveSession {
            unionid: v.unionid,
            phone: v.phone,
            expires_at: v.expires_at,
            as_of: None,
        })
    }

    /// This isolate had the authority change session `sid`: what it
    /// remembers of its replica is gone.
    pub(crate) fn replica_changed(&self, sid: &SessionId) {
        self.isolate.replicas.changed(sid);
    }

    /// Whose access token this is, expired or not (for the log line only:
    /// decides nothing).
    pub(crate) fn subject(&self, authorization: Option<&str>) -> Option<OpenId> {
        let token = bearer(authorization)?;
        verify_access_ignoring_expiry(&self.cfg.token_key, self.cfg.appid.as_str(), token)
            .ok()
            .map(|a| a.claims.subject.openid)
    }

    /// `POST /auth/logout`: the session's authority revokes it for good. An
    /// expired (but genuine) access token still logs out.
    pub(crate) async fn logout(&self, authorization: Option<&str>) -> Result<(), ApiError> {
        let token = bearer(authorization).ok_or(ApiError::Unauthorized)?;
        let access =
            verify_access_ignoring_expiry(&self.cfg.token_key, self.cfg.appid.as_str(), token)?;
        // "Just expired": within one more access-token lifetime, not any age.
        if self.now - access.expires_at > self.cfg.access_ttl_secs() {
            return Err(ApiError::TokenExpired);
        }
        let logout = Logout {
            sid: access.claims.sid.clone(),
        };
        self.authority
            .call(&access.claims.subject.openid, logout)
            .await?;
        // This isolate's own requests see the logout at once.
        let keep = Keep::secs(self.cfg.replica_cache_secs);
        self.isolate
            .replicas
            .forget(keep, &access.claims.sid, self.now);
        Ok(())
    }

    /// `GET /auth/session`: asks the authority, whatever `SESSION_CHECK`.
    pub(crate) async fn session_info(
        &self,
        authorization: Option<&str>,
    ) -> Result<SessionInfo, ApiError> {
        let auth = self
            .authenticate(authorization, SessionCheck::Authority)
            .await?;
        let s = auth.session.ok_or(ApiError::SessionRevoked)?;
        Ok(SessionInfo {
            openid: auth.access.claims.subject.openid.into(),
            unionid: s.unionid,
            phone_bound: s.phone.is_some(),
            expires_at: auth.access.expires_at,
            session_expires_at: s.expires_at,
        })
    }
}
