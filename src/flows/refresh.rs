//! `POST /auth/refresh`: rotation with reuse detection, decided by the
//! user's session authority.

use super::{Edge, Platform, TokenResponse};
use crate::authority::{AuthorityClient, Refresh, Refreshed};
use crate::error::ApiError;
use crate::limits::{client_key, Limit};
use crate::token::refresh::{NewRefresh, ParsedRefresh};

impl<P: Platform> Edge<'_, P> {
    /// Rotates the presented refresh token. The previous one, presented
    /// again within the grace, yields the same pair; any older one is reuse
    /// and revokes the session (see `authority::machine`).
    pub(crate) async fn refresh(
        &self,
        token: &str,
        client_ip: Option<&str>,
    ) -> Result<TokenResponse, ApiError> {
        self.within_limit(Limit::Refresh, &client_key(client_ip))
            .await?;
        // The tag first: a token this deployment did not mint names no
        // authority, so it never creates one nor waits in a user's queue.
        let presented = ParsedRefresh::parse(&self.cfg.refresh_key, token)
            .ok_or(ApiError::InvalidRefreshToken)?;
        let sid = presented.sid.clone();
        let next = NewRefresh::generate(&self.cfg.refresh_key, &presented.openid, &sid, self.rng)?;
        let refresh = Refresh {
            sid: sid.clone(),
            presented_hash: presented.hash(),
            next_hash: next.hash.clone(),
            next_sealed: next.sealed_under(&presented),
        };
        let outcome = self.authority.call(&presented.openid, refresh).await;
        self.replica_changed(&sid);
        match outcome?? {
            Refreshed::Rotated(view) => self.token_response(&sid, &view, &next.token),
            Refreshed::Repeated { session, sealed } => {
                // Only the holder of the previous token can open it.
                let current = presented
                    .unseal(&sealed)
                    .ok_or(ApiError::InvalidRefreshToken)?;
                self.token_response(&sid, &session, &current.token)
            }
        }
    }
}
