//! Calls that name a session by its access token: the token check itself,
//! `GET /auth/session` and `POST /auth/logout`.

use serde::Serialize;

use super::session_lock::SessionLock;
use super::Edge;
use crate::error::ApiError;
use crate::http::headers::bearer;
use crate::ids::SessionId;
use crate::random::Random;
use crate::store::{get_json, session_key, SessionRecord, Store};
use crate::token::access::{verify_access, verify_access_ignoring_expiry, VerifiedAccess};
use crate::wechat::Transport;

/// `GET /auth/session`.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(crate) struct SessionInfo {
    pub(crate) openid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) unionid: Option<String>,
    pub(crate) phone_bound: bool,
    pub(crate) expires_at: i64,
    pub(crate) session_expires_at: i64,
}

/// A request whose access token checked out.
pub(crate) struct Authenticated {
    pub(crate) access: VerifiedAccess,
    /// Loaded when the session was checked in KV.
    pub(crate) session: Option<SessionRecord>,
}

impl<S: Store, T: Transport, R: Random> Edge<'_, S, T, R> {
    /// Checks `Authorization: Bearer`; loads the session when `load_session`.
    pub(crate) async fn authenticate(
        &self,
        authorization: Option<&str>,
        load_session: bool,
    ) -> Result<Authenticated, ApiError> {
        let token = bearer(authorization).ok_or(ApiError::Unauthorized)?;
        let access = verify_access(
            &self.cfg.token_key,
            self.cfg.appid.as_str(),
            token,
            self.now,
        )?;
        let session = if load_session {
            Some(self.live_session(&access).await?)
        } else {
            None
        };
        Ok(Authenticated { access, session })
    }

    async fn live_session(&self, access: &VerifiedAccess) -> Result<SessionRecord, ApiError> {
        let s: SessionRecord = get_json(self.store, &session_key(&access.claims.sid))
            .await?
            .ok_or(ApiError::SessionRevoked)?;
        if s.openid != access.claims.sub || s.expires_at <= self.now {
            return Err(ApiError::SessionRevoked);
        }
        Ok(s)
    }

    /// `POST /auth/logout`. An expired (but genuine) access token still
    /// logs out.
    pub(crate) async fn logout(&self, authorization: Option<&str>) -> Result<(), ApiError> {
        let token = bearer(authorization).ok_or(ApiError::Unauthorized)?;
        let access =
            verify_access_ignoring_expiry(&self.cfg.token_key, self.cfg.appid.as_str(), token)?;
        // "Just expired": within one more access-token lifetime, not any age.
        if self.now - access.expires_at > self.cfg.access_ttl_secs() {
            return Err(ApiError::TokenExpired);
        }
        self.store.delete(&session_key(&access.claims.sid)).await?;
        Ok(())
    }

    /// `GET /auth/session`.
    pub(crate) async fn session_info(
        &self,
        authorization: Option<&str>,
    ) -> Result<SessionInfo, ApiError> {
        let auth = self.authenticate(authorization, true).await?;
        let s = auth.session.ok_or(ApiError::SessionRevoked)?;
        Ok(SessionInfo {
            openid: s.openid.into(),
            unionid: s.unionid,
            phone_bound: s.phone.is_some(),
            expires_at: auth.access.expires_at,
            session_expires_at: s.expires_at,
        })
    }

    /// Holds `sid` against other changes from this isolate (see
    /// [`SessionLocks`](super::SessionLocks)).
    pub(super) async fn lock_session(&self, sid: &SessionId) -> SessionLock<'_> {
        let limit_ms = self.cfg.wechat_timeout_ms.saturating_mul(2);
        self.isolate.sessions.lock(sid, self.wechat, limit_ms).await
    }
}
