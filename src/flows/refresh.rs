//! `POST /auth/refresh`: rotation with reuse detection.

use super::{Edge, TokenResponse};
use crate::error::ApiError;
use crate::random::Random;
use crate::secret::ct_eq;
use crate::store::{get_json, session_key, user_key, SessionRecord, Store, UserRecord};
use crate::token::refresh::{NewRefresh, ParsedRefresh};
use crate::wechat::Transport;

/// Seconds during which a just-rotated refresh token still yields the
/// current one (concurrent refreshes from one client).
pub(crate) const REFRESH_GRACE: i64 = 30;

impl<S: Store, T: Transport, R: Random> Edge<'_, S, T, R> {
    /// Rotates the presented refresh token. The previous one, presented again
    /// within [`REFRESH_GRACE`], yields the same new token; any older one is
    /// reuse and revokes the session.
    pub(crate) async fn refresh(&self, token: &str) -> Result<TokenResponse, ApiError> {
        let presented = ParsedRefresh::parse(token).ok_or(ApiError::InvalidRefreshToken)?;
        let sid = presented.sid.clone();
        // One rotation of a session at a time in this isolate: a concurrent
        // refresh waits, then finds the rotation done and takes the grace
        // path instead of rotating again (KV has no compare-and-swap).
        let _lock = self.lock_session(&sid).await;
        let mut s: SessionRecord = get_json(self.store, &session_key(&sid))
            .await?
            .ok_or(ApiError::InvalidRefreshToken)?;
        if s.expires_at <= self.now {
            self.store.delete(&session_key(&sid)).await?;
            return Err(ApiError::InvalidRefreshToken);
        }
        let hash = presented.hash();

        if ct_eq(hash.as_bytes(), s.refresh_hash.as_bytes()) {
            let next = NewRefresh::generate(&sid, self.rng)?;
            s.rotate(
                next.hash.clone(),
                Some(next.sealed_under(&presented)),
                self.now,
            );
            s.expires_at = self.now + self.cfg.refresh_ttl_secs();
            // The user record is the phone's home: a phone bound from another
            // device (session) reaches this one at its next refresh.
            let user: Option<UserRecord> = get_json(self.store, &user_key(&s.openid)).await?;
            let phone = user.and_then(|u| u.phone).or(s.phone.take());
            s.phone = self.phone_still_allowed(phone).await?;
            self.save_session(&sid, &s).await?;
            return self.token_response(&sid, &s, &next);
        }

        let is_prev = s
            .prev_hash
            .as_deref()
            .is_some_and(|p| ct_eq(hash.as_bytes(), p.as_bytes()));
        let in_grace = s.rotated_at.is_some_and(|t| self.now - t <= REFRESH_GRACE);
        if is_prev && in_grace {
            // A concurrent refresh already rotated: hand out the same
            // current token (only the holder of the previous one can unseal it).
            if let Some(current) = s
                .sealed_current
                .as_deref()
                .and_then(|c| presented.unseal(c))
            {
                if ct_eq(current.hash.as_bytes(), s.refresh_hash.as_bytes()) {
                    return self.token_response(&sid, &s, &current);
                }
            }
            return Err(ApiError::InvalidRefreshToken);
        }
        let is_retired = s
            .retired
            .iter()
            .any(|r| ct_eq(hash.as_bytes(), r.as_bytes()));
        if is_prev || is_retired {
            // A rotated token came back after the grace: someone else holds
            // a copy. End the session for everyone.
            self.store.delete(&session_key(&sid)).await?;
            return Err(ApiError::RefreshReused);
        }
        Err(ApiError::InvalidRefreshToken)
    }
}
