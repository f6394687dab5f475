//! The flows a client drives, one file each, as methods of one type:
//! [`Edge`], everything one request needs.
//!
//! - [`login`](Edge::login) — `POST /auth/login`
//! - [`refresh`](Edge::refresh) — `POST /auth/refresh`
//! - [`session`](Edge::session_info) — the token check, `GET /auth/session`,
//!   `POST /auth/logout`
//! - [`phone`](Edge::bind_phone) — `POST /auth/phone`
//! - [`proxy`](Edge::proxy_identity) — every other path
//! - [`admin`](Edge::admin_user) — the operator endpoints
//! - `service` — admission to the origin's service endpoints
//!   (`/auth/service/*`, behind `SERVICE_TOKEN`); `service_keys` their
//!   session-key operations; [`relay`](Edge::service_relay) the WeChat
//!   relay
//! - `rekey` — `POST /auth/session/rekey`
//! - [`serve`](Edge::serve) — which of these answers a request, with what,
//!   and whom its log line names
//!
//! Every change to a session is made by the user's session authority
//! (`crate::authority`); the flows check tokens, talk to WeChat, and issue
//! what the authority decided. `Edge` holds no I/O of its own: the worker
//! shell builds one per request from KV, the authority's Durable Object,
//! `fetch`, `crypto.getRandomValues` and `Date.now()`; the tests build one
//! from in-memory parts. Which parts is a [`Platform`].

use serde::Serialize;

use crate::authority::{AuthorityClient, SessionView};
use crate::config::Config;
use crate::error::ApiError;
use crate::ids::{SessionId, UnionId};
use crate::limits::{Limit, Limiter, OnFailure};
use crate::random::Random;
use crate::secret::RefreshToken;
use crate::store::Store;
use crate::token::access::{issue_access, AccessClaims};
use crate::token::assertion_cache::AssertionCache;
use crate::token::identity::Ed25519;
use crate::wechat::access_token::WxTokenCache;
use crate::wechat::Transport;

mod admin;
mod login;
mod phone;
mod proxy;
mod refresh;
mod rekey;
mod relay;
mod replica_cache;
pub(crate) mod serve;
pub(crate) mod service;
pub(crate) mod service_keys;
pub(crate) mod session;

/// The ports a deployment plugs into [`Edge`]: the worker's bindings in
/// the shell, in-memory doubles in the tests.
pub(crate) trait Platform {
    /// KV: the sessions' read replica, the WeChat token cache.
    type Store: Store;
    /// HTTP to WeChat.
    type WeChat: Transport;
    type Rng: Random;
    /// The users' session authorities.
    type Authority: AuthorityClient;
    /// The worker's own rate limits.
    type Limits: Limiter;
    /// Ed25519 for `X-WX-Identity` (WebCrypto in the worker).
    type Signer: Ed25519;
}

/// Everything one request needs.
pub(crate) struct Edge<'a, P: Platform> {
    pub(crate) cfg: &'a Config,
    /// What concurrent requests of this isolate share.
    pub(crate) isolate: &'a IsolateState,
    pub(crate) store: &'a P::Store,
    pub(crate) wechat: &'a P::WeChat,
    pub(crate) rng: &'a P::Rng,
    pub(crate) authority: &'a P::Authority,
    pub(crate) limits: &'a P::Limits,
    pub(crate) ed25519: &'a P::Signer,
    /// Unix seconds, from the runtime's clock.
    pub(crate) now: i64,
}

/// State shared by the concurrent requests of one isolate.
#[derive(Default)]
pub(crate) struct IsolateState {
    /// The WeChat API access_token as this isolate knows it.
    pub(crate) wx_token: WxTokenCache,
    /// The `X-WX-Identity` assertions made here, reused while they have
    /// more than half of their life left.
    pub(crate) assertions: AssertionCache,
    /// What the sessions' KV replicas said, for a few seconds
    /// (`REPLICA_CACHE_SECS`).
    pub(crate) replicas: replica_cache::ReplicaCache,
}

/// The body of a successful login or refresh: a token pair.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(crate) struct TokenResponse {
    pub(crate) access_token: String,
    pub(crate) token_type: &'static str,
    pub(crate) expires_in: u64,
    pub(crate) refresh_token: String,
    pub(crate) refresh_expires_in: u64,
    pub(crate) openid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) unionid: Option<UnionId>,
    pub(crate) phone_bound: bool,
}

/// The body of a successful phone binding: the phone, and an access token
/// carrying it. No refresh token: binding does not rotate it, and the
/// client keeps the one it holds.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(crate) struct PhoneResponse {
    #[serde(rename = "phoneNumber", skip_serializing_if = "Option::is_none")]
    pub(crate) phone_number: Option<String>,
    #[serde(rename = "purePhoneNumber")]
    pub(crate) pure_phone_number: String,
    #[serde(rename = "countryCode")]
    pub(crate) country_code: String,
    pub(crate) access_token: String,
    pub(crate) token_type: &'static str,
    pub(crate) expires_in: u64,
    pub(crate) openid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) unionid: Option<UnionId>,
    pub(crate) phone_bound: bool,
}

/// Seconds from `now` until `at`, never negative.
fn secs_until(at: i64, now: i64) -> u64 {
    u64::try_from(at.saturating_sub(now)).unwrap_or(0)
}

impl<P: Platform> Edge<'_, P> {
    /// Counts this request against `limit` for `key`: 429 `rate_limited`
    /// over it. A failing limiter (logged and counted by the limiter port)
    /// refuses the request with 503 or lets it through, as
    /// [`Limit::on_failure`] decides for that limit.
    pub(super) async fn within_limit(&self, limit: Limit, key: &str) -> Result<(), ApiError> {
        match self.limits.allow(limit, key).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(ApiError::RateLimited { errcode: None }),
            Err(_) => match limit.on_failure() {
                OnFailure::Open => Ok(()),
                OnFailure::Closed => Err(ApiError::StoreUnavailable),
            },
        }
    }

    /// An access token for the session as `view` shows it (its unionid and
    /// phone), issued at `issued_at`.
    fn access_token(
        &self,
        sid: &SessionId,
        view: &SessionView,
        issued_at: i64,
    ) -> Result<String, ApiError> {
        let mut claims = AccessClaims::new(self.cfg.appid.as_str(), &view.openid, sid);
        claims.subject.unionid.clone_from(&view.unionid);
        claims.subject.phone.clone_from(&view.phone);
        Ok(issue_access(
            &self.cfg.token_key,
            &claims,
            issued_at,
            self.cfg.access_ttl,
        )?)
    }

    /// The token pair for a session as its authority issued it: the access
    /// token is made at the pair's issue instant, so a pair handed out
    /// again (the refresh grace) is the same pair.
    fn token_response(
        &self,
        sid: &SessionId,
        view: &SessionView,
        refresh_token: &RefreshToken,
    ) -> Result<TokenResponse, ApiError> {
        let access_token = self.access_token(sid, view, view.issued_at)?;
        let access_expires = view.issued_at.saturating_add(self.cfg.access_ttl_secs());
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: secs_until(access_expires, self.now).min(self.cfg.access_ttl),
            refresh_token: refresh_token.secret().to_string(),
            refresh_expires_in: secs_until(view.expires_at, self.now).min(self.cfg.refresh_ttl),
            openid: view.openid.to_string(),
            unionid: view.unionid.clone(),
            phone_bound: view.phone.is_some(),
        })
    }
}

#[cfg(test)]
mod tests;
