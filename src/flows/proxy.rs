//! Every path that is not the worker's own: who the request is, and what
//! the origin is told.

use super::session::Check;
use super::Edge;
use crate::authority::AuthorityClient;
use crate::error::ApiError;
use crate::http::headers::{bearer, Identity};
use crate::http::path::is_public;
use crate::limits::Limiter;
use crate::random::{self, Random};
use crate::store::{allow_key_of, Store};
use crate::token::identity::{sign_identity, IdentityClaims};
use crate::wechat::Transport;

impl<S: Store, T: Transport, R: Random, A: AuthorityClient, L: Limiter> Edge<'_, S, T, R, A, L> {
    /// Who a proxied request is, or why it may not pass. `Ok(None)`: a
    /// public path without a (valid) token.
    pub(crate) async fn proxy_identity(
        &self,
        path: &str,
        authorization: Option<&str>,
    ) -> Result<Option<Identity>, ApiError> {
        let public = is_public(&self.cfg.public_paths, path);
        if public && bearer(authorization).is_none() {
            return Ok(None);
        }
        let check = Check::from(self.cfg.session_check);
        let auth = match self.authenticate(authorization, check).await {
            Ok(a) => a,
            Err(_) if public => return Ok(None),
            Err(e) => return Err(e),
        };
        let c = &auth.access.claims;
        let (unionid, phone) = match &auth.session {
            // The session is the fresher source (a phone bound since the
            // token was issued).
            Some(s) => (
                s.unionid.clone(),
                s.phone
                    .as_ref()
                    .map(|p| (p.pure_phone_number.clone(), p.country_code.clone())),
            ),
            None => (
                c.unionid.clone(),
                c.phone
                    .clone()
                    .map(|p| (p, c.country_code.clone().unwrap_or_default())),
            ),
        };
        // The staff gate. A phone taken off the allowlist no longer counts
        // (the session still carries it until its next refresh).
        let phone = match phone {
            Some((p, cc)) if self.cfg.phone_allowlist => {
                if self.store.get(&allow_key_of(&cc, &p)).await?.is_some() {
                    Some((p, cc))
                } else if public {
                    // Public paths pass, as anonymous: an origin that reads
                    // "has an openid" as "is staff" must not be fooled.
                    return Ok(None);
                } else {
                    return Err(ApiError::NotInternalUser);
                }
            }
            other => other,
        };
        if self.cfg.require_phone && phone.is_none() {
            if public {
                return Ok(None);
            }
            return Err(ApiError::PhoneRequired);
        }
        let (phone, country_code) = match phone {
            Some((p, cc)) => (Some(p), Some(cc).filter(|cc| !cc.is_empty())),
            None => (None, None),
        };
        Ok(Some(Identity {
            openid: c.sub.clone(),
            unionid,
            appid: self.cfg.appid.clone(),
            phone,
            country_code,
        }))
    }

    /// The `X-WX-Identity` assertion for `id`, when `IDENTITY_KEY` is set.
    pub(crate) fn identity_assertion(&self, id: &Identity) -> Result<Option<String>, ApiError> {
        let Some(key) = &self.cfg.identity_key else {
            return Ok(None);
        };
        let jti: [u8; 16] = random::bytes(self.rng)?;
        let mut claims = IdentityClaims::new(
            &self.cfg.origin_audience,
            &self.cfg.appid,
            &id.openid,
            random::hex(&jti),
        );
        claims.unionid.clone_from(&id.unionid);
        claims.phone.clone_from(&id.phone);
        claims.country_code.clone_from(&id.country_code);
        Ok(Some(sign_identity(key, &claims, self.now)?))
    }
}
