//! Every path that is not the worker's own: who the request is, and what
//! the origin is told.

use super::{Edge, Platform};
use crate::error::ApiError;
use crate::http::headers::{bearer, Identity};
use crate::http::path::{is_public, origin_target, TargetError};
use crate::ids::SessionId;
use crate::random::{self};
use crate::store::{allow_key, Store};
use crate::token::assertion_cache::AssertionKey;
use crate::token::identity::{sign_identity, IdentityClaims};

/// What a proxied request passes with: who it is and, with
/// `IDENTITY_KEY`, the `X-WX-Identity` assertion made for that identity
/// and its session (the two are only ever made together).
pub(crate) struct Passed {
    pub(crate) identity: Identity,
    pub(crate) assertion: Option<String>,
}

impl std::fmt::Debug for Passed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passed")
            .field("identity", &self.identity)
            .field("assertion", &self.assertion.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// The request the origin is sent, as a value: the shell applies it to
/// the runtime's `Request` and adds the rewritten headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outgoing {
    /// `ORIGIN_URL` followed by the path and query exactly as sent.
    pub(crate) url: String,
    /// The incoming body goes along, except for `GET` and `HEAD` (whose
    /// bodies `fetch` refuses).
    pub(crate) with_body: bool,
    /// Never: a redirect goes back to the client as the origin sent it.
    pub(crate) follow_redirects: bool,
    /// Never: the origin's answers are personal, so never into a shared
    /// cache.
    pub(crate) cached: bool,
}

impl Outgoing {
    /// The origin's request for `request_url` sent with `method`: 400
    /// `invalid_request` for a path that could leave `ORIGIN_URL`'s base
    /// path at the origin (see [`origin_target`]); 500 when the URL is not
    /// absolute (the runtime always makes it so).
    pub(crate) fn to_origin(
        origin_url: &str,
        request_url: &str,
        method: &str,
    ) -> Result<Self, ApiError> {
        let url = origin_target(origin_url, request_url).map_err(|e| match e {
            TargetError::LeavesBasePath => {
                ApiError::InvalidRequest("the path could leave the origin's base path")
            }
            TargetError::NotAbsolute => ApiError::Internal,
        })?;
        Ok(Outgoing {
            url,
            with_body: !matches!(method, "GET" | "HEAD"),
            follow_redirects: false,
            cached: false,
        })
    }
}

impl<P: Platform> Edge<'_, P> {
    /// Who a proxied request is, or why it may not pass. `Ok(None)`: a
    /// public path without a (valid) token.
    #[cfg(test)]
    pub(crate) async fn proxy_identity(
        &self,
        path: &str,
        authorization: Option<&str>,
    ) -> Result<Option<Identity>, ApiError> {
        Ok(self
            .proxy_pass(path, authorization)
            .await?
            .map(|p| p.identity))
    }

    /// Who a proxied request is and its assertion, or why it may not pass.
    /// `Ok(None)`: a public path without a (valid) token.
    pub(crate) async fn proxy_pass(
        &self,
        path: &str,
        authorization: Option<&str>,
    ) -> Result<Option<Passed>, ApiError> {
        let public = is_public(&self.cfg.public_paths, path);
        if public && bearer(authorization).is_none() {
            return Ok(None);
        }
        let check = self.cfg.session_check;
        let auth = match self.authenticate(authorization, check).await {
            Ok(a) => a,
            Err(_) if public => return Ok(None),
            Err(e) => return Err(e),
        };
        let c = &auth.access.claims;
        let mut subject = c.subject.clone();
        if let Some(s) = &auth.session {
            // Whichever is newer says the unionid and the phone: the
            // session for a token that predates a phone binding, the token
            // for a binding the (cached) replica has not seen yet.
            let token_is_newer = s.as_of.is_some_and(|at| auth.access.issued_at > at);
            if !token_is_newer {
                subject.unionid.clone_from(&s.unionid);
                subject.phone.clone_from(&s.phone);
            }
        }
        // The staff gate. A phone taken off the allowlist no longer counts
        // (the session still carries it until its next refresh).
        let listed = match &subject.phone {
            Some(p) if self.cfg.phone_allowlist => self.store.get(&allow_key(p)).await?.is_some(),
            _ => true,
        };
        if !listed {
            // Public paths pass, as anonymous: an origin that reads "has an
            // openid" as "is staff" must not be fooled.
            if public {
                return Ok(None);
            }
            return Err(ApiError::NotInternalUser);
        }
        if self.cfg.require_phone && subject.phone.is_none() {
            if public {
                return Ok(None);
            }
            return Err(ApiError::PhoneRequired);
        }
        let id = Identity {
            subject,
            appid: self.cfg.appid.clone(),
        };
        let assertion = self.assertion_for(&id, &c.sid).await?;
        Ok(Some(Passed {
            identity: id,
            assertion,
        }))
    }

    /// The `X-WX-Identity` assertion for `id` of `session`, when
    /// `IDENTITY_KEY` is set: reused from the isolate while it has more
    /// than half of its life left, else signed (with a new `jti`: it names
    /// the assertion) and kept for reuse.
    async fn assertion_for(
        &self,
        id: &Identity,
        session: &SessionId,
    ) -> Result<Option<String>, ApiError> {
        let Some(key) = &self.cfg.identity_key else {
            return Ok(None);
        };
        let cache_key = AssertionKey {
            session: session.clone(),
            audience: self.cfg.origin_audience.clone(),
            appid: id.appid.clone(),
            subject: id.subject.clone(),
        };
        let token = if let Some(token) = self.isolate.assertions.get(&cache_key, self.now) {
            token
        } else {
            let jti: [u8; 16] = random::bytes(self.rng)?;
            let claims = IdentityClaims::new(
                &cache_key.audience,
                &id.appid,
                id.subject.clone(),
                random::hex(&jti),
                self.now,
            );
            let token = sign_identity(key, self.ed25519, &claims).await?;
            self.isolate
                .assertions
                .put(cache_key, token.clone(), self.now);
            token
        };
        Ok(Some(token))
    }
}
