//! The operator endpoints under `/auth/admin/`, behind `ADMIN_TOKEN`.

use crate::limits::Limiter;
use serde::Serialize;

use super::Edge;
use crate::authority::{AuthorityClient, ReadUser, RevokeAll, UserSummary};
use crate::error::ApiError;
use crate::http::headers::bearer;
use crate::ids::OpenId;
use crate::random::Random;
use crate::store::Store;
use crate::wechat::Transport;

/// `GET /auth/admin/users/{openid}`: the user record and the number of
/// live sessions. Never a session_key, a token or a hash.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(crate) struct AdminUser {
    pub(crate) openid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) unionid: Option<String>,
    pub(crate) first_login_at: i64,
    pub(crate) last_login_at: i64,
    pub(crate) last_login_ip: Option<String>,
    pub(crate) login_count: u64,
    pub(crate) phone: Option<AdminPhone>,
    pub(crate) phone_bound_at: Option<i64>,
    pub(crate) live_sessions: usize,
}

/// A bound phone, with the contract's field names.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(crate) struct AdminPhone {
    #[serde(rename = "phoneNumber")]
    pub(crate) phone_number: String,
    #[serde(rename = "purePhoneNumber")]
    pub(crate) pure_phone_number: String,
    #[serde(rename = "countryCode")]
    pub(crate) country_code: String,
}

/// `POST /auth/admin/users/{openid}/revoke`.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(crate) struct Revoked {
    pub(crate) revoked: usize,
}

/// An openid as it may appear in an operator's path: WeChat's alphabet.
fn openid_from_path(segment: &str) -> Result<OpenId, ApiError> {
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

impl<S: Store, T: Transport, R: Random, A: AuthorityClient, L: Limiter> Edge<'_, S, T, R, A, L> {
    /// Without `ADMIN_TOKEN` the endpoints do not exist (404); with it, a
    /// missing or wrong bearer is 401. Compared in constant time.
    fn admit_operator(&self, authorization: Option<&str>) -> Result<(), ApiError> {
        let Some(expected) = &self.cfg.admin_token else {
            return Err(ApiError::NotFound);
        };
        match bearer(authorization) {
            None => Err(ApiError::Unauthorized),
            Some(t) if expected.matches(t) => Ok(()),
            Some(_) => Err(ApiError::InvalidToken),
        }
    }

    /// `GET /auth/admin/users/{openid}`.
    pub(crate) async fn admin_user(
        &self,
        authorization: Option<&str>,
        openid: &str,
    ) -> Result<AdminUser, ApiError> {
        self.admit_operator(authorization)?;
        let openid = openid_from_path(openid)?;
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
            phone: user.phone.map(|p| AdminPhone {
                phone_number: p.phone_number,
                pure_phone_number: p.pure_phone_number,
                country_code: p.country_code,
            }),
            phone_bound_at: user.phone_bound_at,
            live_sessions,
        })
    }

    /// `POST /auth/admin/users/{openid}/revoke`: every session of the user.
    pub(crate) async fn admin_revoke(
        &self,
        authorization: Option<&str>,
        openid: &str,
    ) -> Result<Revoked, ApiError> {
        self.admit_operator(authorization)?;
        let openid = openid_from_path(openid)?;
        let revoked = self.authority.call(&openid, RevokeAll).await?;
        Ok(Revoked { revoked })
    }
}
