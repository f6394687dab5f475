//! Admission to the service endpoints under `/auth/service/`, for the
//! origin's servers (never the mini-program), behind `SERVICE_TOKEN`:
//! decided as the operator endpoints' is (`admin.rs`).

use super::admin::openid_from_path;
use super::{Edge, Platform};
use crate::config::Config;
use crate::error::ApiError;
use crate::http::headers::bearer;
use crate::http::router::{BodyKind, Route};
use crate::ids::OpenId;
use crate::limits::{client_key, Limit};

/// The body the shell reads for `route` before [`Edge::serve`]: the
/// route's own ([`Route::body`]), except that a service request whose
/// bearer is not a service token gets none — its admission fails before
/// any body is looked at, so a caller without the token never makes the
/// worker buffer up to the relay's 2 MiB.
pub(crate) fn body_to_read(
    cfg: &Config,
    route: Route<'_>,
    authorization: Option<&str>,
) -> Option<BodyKind> {
    let admitted = || {
        cfg.service.token.is_some()
            && bearer(authorization).is_some_and(|t| cfg.service.is_service_token(t))
    };
    match route {
        Route::ServiceCheck(_)
        | Route::ServiceReset(_)
        | Route::ServiceSign(_)
        | Route::ServiceDecrypt(_)
        | Route::ServiceRelay(_)
            if !admitted() =>
        {
            None
        }
        _ => route.body(),
    }
}

impl<P: Platform> Edge<'_, P> {
    /// Without `SERVICE_TOKEN` the endpoints do not exist (404, before
    /// anything else is looked at); with it, the call is counted against
    /// the service limit per client address (a failing limiter lets it
    /// through: see [`Limit::on_failure`]), and a missing bearer is 401
    /// `unauthorized`, any other than `SERVICE_TOKEN` or
    /// `SERVICE_TOKEN_PREVIOUS` (a client's access token, `ADMIN_TOKEN`)
    /// 401 `invalid_token`. Compared in constant time.
    pub(super) async fn admit_service(
        &self,
        authorization: Option<&str>,
        client_ip: Option<&str>,
    ) -> Result<(), ApiError> {
        if self.cfg.service.token.is_none() {
            return Err(ApiError::NotFound);
        }
        self.within_limit(Limit::Service, &client_key(client_ip))
            .await?;
        match bearer(authorization) {
            None => Err(ApiError::Unauthorized),
            Some(t) if self.cfg.service.is_service_token(t) => Ok(()),
            Some(_) => Err(ApiError::InvalidToken),
        }
    }

    /// The user a service request is about, once the caller is admitted
    /// (admission first: 404/429/401 before a bad openid is 400).
    pub(crate) async fn service_target(
        &self,
        authorization: Option<&str>,
        client_ip: Option<&str>,
        openid: &str,
    ) -> Result<OpenId, ApiError> {
        self.admit_service(authorization, client_ip).await?;
        openid_from_path(openid)
    }

    /// Whom a service request is about, once its caller would be admitted
    /// (for the log line only: decides nothing, counts nothing).
    pub(crate) fn service_subject(
        &self,
        authorization: Option<&str>,
        openid: &str,
    ) -> Option<OpenId> {
        self.cfg.service.token.as_ref()?;
        bearer(authorization).filter(|t| self.cfg.service.is_service_token(t))?;
        openid_from_path(openid).ok()
    }
}
