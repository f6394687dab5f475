//! The flows a client drives, one file each, as methods of one type:
//! [`Edge`], everything one request needs.
//!
//! - [`login`](Edge::login) — `POST /auth/login`
//! - [`refresh`](Edge::refresh) — `POST /auth/refresh`
//! - [`session`](Edge::session_info) — `GET /auth/session`, `POST /auth/logout`
//! - [`phone`](Edge::bind_phone) — `POST /auth/phone`
//! - [`proxy`](Edge::proxy_identity) — every other path
//!
//! `Edge` holds no I/O of its own: the worker shell builds one per request
//! from KV, `fetch`, `crypto.getRandomValues` and `Date.now()`; the tests
//! build one from an in-memory store and a scripted transport.

use serde::Serialize;

use crate::config::Config;
use crate::error::ApiError;
use crate::ids::SessionId;
use crate::random::Random;
use crate::store::{allow_key, put_json, session_key, SessionRecord, Store};
use crate::token::access::{issue_access, AccessClaims};
use crate::token::refresh::NewRefresh;
use crate::wechat::access_token::WxTokenCache;
use crate::wechat::open_data::VerifiedPhone;
use crate::wechat::Transport;

mod login;
pub(crate) mod phone;
mod proxy;
mod refresh;
mod session;
mod session_lock;

pub(crate) use session_lock::SessionLocks;

/// Everything one request needs.
pub(crate) struct Edge<'a, S, T, R> {
    pub(crate) cfg: &'a Config,
    /// What concurrent requests of this isolate share.
    pub(crate) isolate: &'a IsolateState,
    pub(crate) store: &'a S,
    pub(crate) wechat: &'a T,
    pub(crate) rng: &'a R,
    /// Unix seconds, from the runtime's clock.
    pub(crate) now: i64,
}

/// State shared by the concurrent requests of one isolate.
#[derive(Default)]
pub(crate) struct IsolateState {
    /// The WeChat API access_token as this isolate knows it.
    pub(crate) wx_token: WxTokenCache,
    /// Sessions being changed by a request of this isolate right now.
    pub(crate) sessions: SessionLocks,
}

/// The body of a successful login, refresh or phone binding.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(crate) struct TokenResponse {
    #[serde(rename = "phoneNumber", skip_serializing_if = "Option::is_none")]
    pub(crate) phone_number: Option<String>,
    #[serde(rename = "purePhoneNumber", skip_serializing_if = "Option::is_none")]
    pub(crate) pure_phone_number: Option<String>,
    #[serde(rename = "countryCode", skip_serializing_if = "Option::is_none")]
    pub(crate) country_code: Option<String>,
    pub(crate) access_token: String,
    pub(crate) token_type: &'static str,
    pub(crate) expires_in: u64,
    pub(crate) refresh_token: String,
    pub(crate) refresh_expires_in: u64,
    pub(crate) openid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) unionid: Option<String>,
    pub(crate) phone_bound: bool,
}

/// Seconds until `expires_at`, as a KV expiry (KV refuses less than 60 s).
fn ttl_until(expires_at: i64, now: i64) -> u64 {
    u64::try_from(expires_at - now).unwrap_or(0).max(60)
}

impl<S: Store, T: Transport, R: Random> Edge<'_, S, T, R> {
    /// A fresh access token for session `sid`.
    fn access_token_for(&self, sid: &SessionId, s: &SessionRecord) -> Result<String, ApiError> {
        let mut claims = AccessClaims::new(self.cfg.appid.as_str(), &s.openid, sid);
        claims.unionid.clone_from(&s.unionid);
        if let Some(p) = &s.phone {
            claims.phone = Some(p.pure_phone_number.clone());
            claims.country_code = Some(p.country_code.clone());
        }
        Ok(issue_access(
            &self.cfg.token_key,
            &claims,
            self.now,
            self.cfg.access_ttl,
        )?)
    }

    /// The token pair answered by login, refresh and phone binding.
    fn token_response(
        &self,
        sid: &SessionId,
        s: &SessionRecord,
        refresh: &NewRefresh,
    ) -> Result<TokenResponse, ApiError> {
        Ok(TokenResponse {
            phone_number: None,
            pure_phone_number: None,
            country_code: None,
            access_token: self.access_token_for(sid, s)?,
            token_type: "Bearer",
            expires_in: self.cfg.access_ttl,
            refresh_token: refresh.token.secret().to_string(),
            refresh_expires_in: ttl_until(s.expires_at, self.now),
            openid: s.openid.to_string(),
            unionid: s.unionid.clone(),
            phone_bound: s.phone.is_some(),
        })
    }

    async fn save_session(&self, sid: &SessionId, s: &SessionRecord) -> Result<(), ApiError> {
        put_json(
            self.store,
            &session_key(sid),
            s,
            Some(ttl_until(s.expires_at, self.now)),
        )
        .await
    }

    /// Whether `phone` is on the staff allowlist (`PHONE_ALLOWLIST`).
    async fn is_listed(&self, phone: &VerifiedPhone) -> Result<bool, ApiError> {
        Ok(self
            .store
            .get(&allow_key(&phone.pure_phone_number))
            .await?
            .is_some())
    }

    /// The phone to carry into a session: the user's bound one, unless the
    /// allowlist is on and the number has since been taken off it.
    async fn phone_still_allowed(
        &self,
        phone: Option<VerifiedPhone>,
    ) -> Result<Option<VerifiedPhone>, ApiError> {
        match phone {
            Some(p) if self.cfg.phone_allowlist => {
                let listed = self.is_listed(&p).await?;
                Ok(listed.then_some(p))
            }
            other => Ok(other),
        }
    }
}

#[cfg(test)]
mod tests;
