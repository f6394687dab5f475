//! One request, as the shell read it: which flow answers it, what the
//! answer is, and whom the log line may name.

use serde::Serialize;

use super::proxy::{Outgoing, Passed};
use super::{Edge, PhoneResponse, Platform, TokenResponse};
use crate::error::ApiError;
use crate::http::body::{login_code, parse_object, phone_request, refresh_token, BodyError};
use crate::http::response::Payload;
use crate::http::router::{BodyKind, Route};
use crate::ids::OpenId;
use crate::token::identity::jwks;
use crate::token::refresh::ParsedRefresh;

/// What the shell read of a request.
pub(crate) struct Request<'a> {
    pub(crate) route: Route<'a>,
    /// As the runtime hands it over.
    pub(crate) method: &'a str,
    /// The URL as sent, and its path: what is routed, classified as
    /// public or not, and forwarded are one and the same string.
    pub(crate) url: &'a str,
    pub(crate) path: &'a str,
    pub(crate) authorization: Option<&'a str>,
    pub(crate) client_ip: Option<&'a str>,
    pub(crate) content_type: Option<&'a str>,
    /// The body, read when [`Route::body`] asks for it (empty otherwise).
    pub(crate) body: Result<&'a [u8], BodyError>,
}

/// A proxied request that may pass: who it is, and what the origin is sent.
#[derive(Debug)]
pub(crate) struct Forward {
    pub(crate) passed: Option<Passed>,
    pub(crate) outgoing: Outgoing,
}

/// How a request is answered.
#[derive(Debug)]
pub(crate) enum Reply {
    /// By the worker itself.
    Own(Payload),
    /// By the origin.
    Forward(Forward),
}

/// What was decided about a request.
#[derive(Debug)]
pub(crate) struct Served {
    pub(crate) reply: Result<Reply, ApiError>,
    /// The user the log line names: one whose token (or, for the
    /// operator endpoints, whose operator) was verified, never one read
    /// from unverified input.
    pub(crate) user: Option<OpenId>,
}

fn json<T: Serialize>(value: &T) -> Result<Reply, ApiError> {
    serde_json::to_string(value)
        .map(|body| Reply::Own(Payload::Json(body)))
        .map_err(|_| ApiError::Internal)
}

impl<P: Platform> Edge<'_, P> {
    /// Answers `req`.
    pub(crate) async fn serve(&self, req: Request<'_>) -> Served {
        let mut user = None;
        let reply = match req.route {
            Route::NotFound => Err(ApiError::NotFound),
            Route::MethodNotAllowed(_) => Err(ApiError::MethodNotAllowed),
            Route::Proxy => self.forward(&req).await,
            Route::Jwks => jwks(&self.cfg.published_identity_keys(), self.ed25519)
                .await
                .map(|body| Reply::Own(Payload::Jwks(body)))
                .map_err(ApiError::from),
            Route::Login => {
                let resp = self.login_with(&req).await;
                user = resp.as_ref().ok().map(|r| OpenId::new(r.openid.clone()));
                resp.and_then(|r| json(&r))
            }
            Route::Refresh => {
                let resp = self.refresh_with(&req).await;
                // The openid of a token whose tag verified (this deployment
                // minted it for that user), even when the authority then
                // refused it; nobody for a made-up one.
                user = match &resp {
                    Ok(r) => Some(OpenId::new(r.openid.clone())),
                    Err(_) => self.refresh_subject(&req),
                };
                resp.and_then(|r| json(&r))
            }
            Route::Logout => {
                user = self.subject(req.authorization);
                self.logout(req.authorization)
                    .await
                    .map(|()| Reply::Own(Payload::NoContent))
            }
            Route::Session => {
                user = self.subject(req.authorization);
                self.session_info(req.authorization)
                    .await
                    .and_then(|r| json(&r))
            }
            Route::Phone => {
                user = self.subject(req.authorization);
                self.phone_with(&req).await.and_then(|r| json(&r))
            }
            Route::AdminUser(openid) => {
                user = self.operator_subject(req.authorization, openid);
                self.admin_user(req.authorization, req.client_ip, openid)
                    .await
                    .and_then(|r| json(&r))
            }
            Route::AdminRevoke(openid) => {
                user = self.operator_subject(req.authorization, openid);
                self.admin_revoke(req.authorization, req.client_ip, openid)
                    .await
                    .and_then(|r| json(&r))
            }
            Route::Rekey => {
                user = self.subject(req.authorization);
                self.rekey_with(&req)
                    .await
                    .map(|()| Reply::Own(Payload::NoContent))
            }
            Route::ServiceCheck(openid)
            | Route::ServiceReset(openid)
            | Route::ServiceSign(openid)
            | Route::ServiceDecrypt(openid) => {
                user = self.service_subject(req.authorization, openid);
                self.service_user(&req, openid).await
            }
            Route::ServiceRelay(path) => self
                .service_relay(&req, path)
                .await
                .map(|r| Reply::Own(Payload::Relayed(r))),
        };
        Served { reply, user }
    }

    /// A service endpoint about one user: admission, the openid, then the
    /// body (for those that read one), in that order.
    async fn service_user(&self, req: &Request<'_>, openid: &str) -> Result<Reply, ApiError> {
        let openid = self
            .service_target(req.authorization, req.client_ip, openid)
            .await?;
        match req.route {
            Route::ServiceCheck(_) => json(&self.service_check(&openid).await?),
            Route::ServiceReset(_) => json(&self.service_reset(&openid).await?),
            Route::ServiceSign(_) => json(&self.service_sign(&openid, &body_of(req)?).await?),
            Route::ServiceDecrypt(_) => json(&self.service_decrypt(&openid, &body_of(req)?).await?),
            _ => Err(ApiError::NotFound),
        }
    }

    async fn rekey_with(&self, req: &Request<'_>) -> Result<(), ApiError> {
        let body = body_of(req)?;
        self.rekey(req.authorization, req.client_ip, &body).await
    }

    async fn forward(&self, req: &Request<'_>) -> Result<Reply, ApiError> {
        // The target first: a path that could leave the base path is
        // refused whoever sends it.
        let outgoing = Outgoing::to_origin(&self.cfg.origin_url, req.url, req.method)?;
        let passed = self.proxy_pass(req.path, req.authorization).await?;
        Ok(Reply::Forward(Forward { passed, outgoing }))
    }

    async fn login_with(&self, req: &Request<'_>) -> Result<TokenResponse, ApiError> {
        let body = body_of(req)?;
        self.login(login_code(&body)?, req.client_ip).await
    }

    async fn refresh_with(&self, req: &Request<'_>) -> Result<TokenResponse, ApiError> {
        let body = body_of(req)?;
        self.refresh(refresh_token(&body)?, req.client_ip).await
    }

    /// The user of the presented refresh token, if its tag verifies.
    fn refresh_subject(&self, req: &Request<'_>) -> Option<OpenId> {
        let body = body_of(req).ok()?;
        let token = refresh_token(&body).ok()?;
        ParsedRefresh::parse(&self.cfg.refresh_key, token).map(|p| p.openid)
    }

    async fn phone_with(&self, req: &Request<'_>) -> Result<PhoneResponse, ApiError> {
        let body = body_of(req)?;
        self.bind_phone(req.authorization, phone_request(&body)?)
            .await
    }
}

/// The body as a JSON object, form-encoded where the route allows it.
fn body_of(req: &Request<'_>) -> Result<serde_json::Map<String, serde_json::Value>, BodyError> {
    let allow_form = req.route.body() == Some(BodyKind::JsonOrForm);
    parse_object(req.content_type, req.body?, allow_form)
}
