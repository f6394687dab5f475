//! Open data, opened inside the authority with the keys it keeps (which
//! never leave it): the legacy phone, bound as a verified phone, and any
//! other open data, answered as its plaintext. A failure to open is
//! counted against a session; the fifth revokes it.

use super::{Run, StateStore};
use crate::authority::machine::DecryptFailed;
use crate::authority::protocol::{BindDenied, BindEncrypted, Bound, OpenData, OpenDenied};
use crate::authority::timeout::Timer;
use crate::store::{Store, StoreError};
use crate::wechat::open_data::{Freshness, OpenDataError};

impl<St: StateStore, K: Store, Tm: Timer> Run<'_, '_, St, K, Tm> {
    fn freshness(&self) -> Freshness {
        Freshness {
            now: self.now,
            max_age: self.server.cfg.phone_data_max_age,
        }
    }

    /// Legacy phone data: opened with the session's key (which never
    /// leaves the authority), then bound as a verified phone. A failed
    /// decryption is counted; five revoke the session.
    pub(super) async fn bind_encrypted(
        &mut self,
        request: BindEncrypted,
    ) -> Result<Result<Bound, BindDenied>, StoreError> {
        let Some(key) = self.state.live_key(&request.sid, self.now) else {
            return Ok(Err(BindDenied::SessionRevoked));
        };
        match request
            .encrypted
            .open(key, self.server.cfg.appid.as_str(), self.freshness())
        {
            Ok(phone) => {
                let listed = self.server.listed(Some(&phone)).await?;
                self.commit(request.opened(phone), listed).await
            }
            // Stale data counts like data that does not decrypt: a replay
            // is an attempt.
            Err(e @ (OpenDataError::DecryptFailed | OpenDataError::Stale)) => {
                let sid = request.sid;
                self.commit(DecryptFailed { sid }, None).await?;
                Ok(Err(BindDenied::OpenData(e)))
            }
            Err(e) => Ok(Err(BindDenied::OpenData(e))),
        }
    }

    /// Any open data: tried with the live sessions' keys, newest first;
    /// the first that opens it answers (this app's watermark, fresh
    /// enough), so data sealed under an older session's key (the client
    /// logged in again since) still opens. Data that opens with none, or
    /// is stale, counts one failed decryption against the newest live
    /// session, as `/auth/phone` counts against its session. The answer
    /// never says which key was tried or why each failed.
    pub(super) async fn open_data(
        &mut self,
        request: OpenData,
    ) -> Result<Result<String, OpenDenied>, StoreError> {
        let (appid, freshness) = (self.server.cfg.appid.as_str(), self.freshness());
        let (newest, opened) = {
            let keys = self.state.live_keys_newest_first(self.now);
            let Some((newest, _)) = keys.first() else {
                return Ok(Err(OpenDenied::NoLiveSession));
            };
            // Malformed input is the same for every key: the first answers.
            let opened = keys
                .iter()
                .map(|(_, key)| request.encrypted.open_object(key, appid, freshness))
                .find(|opened| *opened != Err(OpenDataError::DecryptFailed))
                .unwrap_or(Err(OpenDataError::DecryptFailed));
            ((*newest).clone(), opened)
        };
        match opened {
            Ok(text) => Ok(Ok(text)),
            Err(e @ (OpenDataError::DecryptFailed | OpenDataError::Stale)) => {
                self.commit(DecryptFailed { sid: newest }, None).await?;
                Ok(Err(OpenDenied::OpenData(e)))
            }
            Err(e) => Ok(Err(OpenDenied::OpenData(e))),
        }
    }
}
