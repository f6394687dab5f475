//! The operator endpoints under `/auth/admin/`, behind `ADMIN_TOKEN`.

use serde::Serialize;

use super::{Edge, Platform};
use crate::authority::{AuthorityClient, ReadUser, RevokeAll, UserSummary};
use crate::error::ApiError;
use crate::http::headers::bearer;
use crate::ids::{OpenId, UnionId};
use crate::limits::{client_key, Limit};
use crate::phone::Phone;

/// `GET /auth/admin/users/{openid}`: the user record and the number of
/// live sessions. Never a session_key, a token or a hash.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(crate) struct AdminUser {
    pub(crate) openid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) unionid: Option<UnionId>,
    pub(crate) first_login_at: i64,
    pub(crate) last_login_at: i64,
    pub(crate) last_login_ip: Option<String>,
    pub(crate) login_count: u64,
    /// With the contract's field names (`phoneNumber`…).
    #[serde(serialize_with = "crate::phone::reply_form")]
    pub(crate) phone: Option<Phone>,
    pub(crate) phone_bound_at: Option<i64>,
    pub(crate) live_sessions: usize,
}

/// `POST /auth/admin/users/{openid}/revoke`.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(crate) struct Revoked {
    pub(crate) revoked: usize,
}

/// An openid as it may appear in an operator's path: WeChat's alphabet.
pub(super) fn openid_from_path(segment: &str) -> Result<OpenId, ApiError> {
    let ok = !segment.is_empty()
        && segment.len() <= 128
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(OpenId::new(segment))
    } else {
        Err(ApiError::InvalidRequest(
            "the openid in the path is not an openid",
        ))
    }
}

impl<P: Platform> Edge<'_, P> {
    /// Without `ADMIN_TOKEN` the endpoints do not exist (404); with it,
    /// the call is counted against the operator limit per client address
    /// (before the token is looked at, so guesses are counted too), and a
    /// missing or wrong bearer is 401. Compared in constant time.
    async fn admit_operator(
        &self,
        authorization: Option<&str>,
        client_ip: Option<&str>,
    ) -> Result<(), ApiError> {
        if self.cfg.admin_token.is_none() {
            return Err(ApiError::NotFound);
        }
        self.within_limit(Limit::Admin, &client_key(client_ip))
            .await?;
        match bearer(authorization) {
            None => Err(ApiError::Unauthorized),
            Some(t) if self.cfg.is_admin_token(t) => Ok(()),
            Some(_) => Err(ApiError::InvalidToken),
        }
    }

    /// The user an operator request is about, once the operator is
    /// admitted (admission is decided first: 404/401 before a bad openid).
    async fn operator_target(
        &self,
        authorization: Option<&str>,
        client_ip: Option<&str>,
        openid: &str,
    ) -> Result<OpenId, ApiError> {
        self.admit_operator(authorization, client_ip).await?;
        openid_from_path(openid)
    }

    /// Whom an operator request is about, once the operator is admitted
    /// (for the log line only: decides nothing, counts nothing).
    pub(crate) fn operator_subject(
        &self,
        authorization: Option<&str>,
        openid: &str,
    ) -> Option<OpenId> {
        bearer(authorization).filter(|t| self.cfg.is_admin_token(t))?;
        openid_from_path(openid).ok()
    }

    /// `GET /auth/admin/users/{openid}`.
    pub(crate) async fn admin_user(
        &self,
        authorization: Option<&str>,
        client_ip: Option<&str>,
        openid: &str,
    ) -> Result<AdminUser, ApiError> {
        let openid = self
            .operator_target(authorization, client_ip, openid)
            .await?;
        let UserSummary {
            user,
            live_sessions,
        } = self.authority.call(&openid, ReadUser).await?;
        let user = user.ok_or(ApiError::NotFound)?;
        Ok(AdminUser {
            openid: user.openid.into(),
            unionid: user.unionid,
            first_login_at: user.first_login_at,
            last_login_at: user.last_login_at,
            last_login_ip: user.last_login_ip,
            login_count: user.login_count,
            phone: user.phone,
            phone_bound_at: user.phone_bound_at,
            live_sessions,
        })
    }

    /// `POST /auth/admin/users/{openid}/revoke`: every session of the user.
    pub(crate) async fn admin_revoke(
        &self,
        authorization: Option<&str>,
        client_ip: Option<&str>,
        openid: &str,
    ) -> Result<Revoked, ApiError> {
        let openid = self
            .operator_target(authorization, client_ip, openid)
            .await?;
        let revoked = self.authority.call(&openid, RevokeAll).await?;
        self.isolate.replicas.forget_user(&openid, self.now);
        Ok(Revoked { revoked })
    }
}
