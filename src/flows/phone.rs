//! `POST /auth/phone`: binds a phone WeChat vouches for, by the current
//! `code` API or the legacy `encryptedData`/`iv`.

use super::{Edge, TokenResponse};
use crate::error::{ApiError, PhoneCallError};
use crate::ids::{OpenId, WxCode};
use crate::random::Random;
use crate::secret::WxAccessToken;
use crate::store::{get_json, put_json, session_key, user_key, SessionRecord, Store, UserRecord};
use crate::token::refresh::NewRefresh;
use crate::wechat::open_data::{phone_from_phone_info, EncryptedPhone, VerifiedPhone};
use crate::wechat::{api, call_with_retry, Transport};

/// What `/auth/phone` was sent.
pub(crate) enum PhoneRequest<'a> {
    Code(&'a str),
    Encrypted(EncryptedPhone),
}

impl<S: Store, T: Transport, R: Random> Edge<'_, S, T, R> {
    /// Verifies the phone, checks the allowlist, and binds the phone to the
    /// user record and this session; answers a fresh pair carrying it.
    pub(crate) async fn bind_phone(
        &self,
        authorization: Option<&str>,
        request: PhoneRequest<'_>,
    ) -> Result<TokenResponse, ApiError> {
        let auth = self.authenticate(authorization, true).await?;
        let s = auth.session.ok_or(ApiError::SessionRevoked)?;
        let sid = auth.access.claims.sid.clone();

        let phone: VerifiedPhone = match request {
            PhoneRequest::Code(code) => {
                let code = WxCode::parse(code)?;
                let info = self.phone_number(&code, &s.openid).await?;
                phone_from_phone_info(&info, self.cfg.appid.as_str())?
            }
            PhoneRequest::Encrypted(enc) => enc.open(&s.session_key, self.cfg.appid.as_str())?,
        };

        if self.cfg.phone_allowlist && !self.is_listed(&phone).await? {
            return Err(ApiError::NotInternalUser);
        }

        // WeChat took its time: the session may have been logged out,
        // revoked or refreshed meanwhile. Re-read it under the session lock
        // and apply the binding to what is there now, never resurrecting it.
        let _lock = self.lock_session(&sid).await;
        let mut s: SessionRecord = get_json(self.store, &session_key(&sid))
            .await?
            .filter(|fresh: &SessionRecord| fresh.openid == s.openid)
            .ok_or(ApiError::SessionRevoked)?;

        let ukey = user_key(&s.openid);
        let mut user = get_json::<S, UserRecord>(self.store, &ukey)
            .await?
            .unwrap_or_else(|| UserRecord {
                // The record went missing (or unreadable): rebuild it from
                // the session rather than bind the phone to the session only.
                openid: s.openid.clone(),
                unionid: s.unionid.clone(),
                first_login_at: s.created_at,
                last_login_at: s.created_at,
                last_login_ip: None,
                login_count: 1,
                phone: None,
                phone_bound_at: None,
            });
        user.phone = Some(phone.clone());
        user.phone_bound_at = Some(self.now);
        put_json(self.store, &ukey, &user, None).await?;

        // A fresh pair carrying the phone. The replaced refresh token is
        // retired (presenting it later is reuse) after the usual grace.
        let next = NewRefresh::generate(&sid, self.rng)?;
        s.rotate(next.hash.clone(), None, self.now);
        s.phone = Some(phone.clone());
        self.save_session(&sid, &s).await?;

        let mut resp = self.token_response(&sid, &s, &next)?;
        resp.phone_number = Some(phone.phone_number);
        resp.pure_phone_number = Some(phone.pure_phone_number);
        resp.country_code = Some(phone.country_code);
        Ok(resp)
    }

    /// getuserphonenumber, with the cached access_token; on a token error
    /// the token is fetched again once and the call retried.
    async fn phone_number(
        &self,
        code: &WxCode,
        openid: &OpenId,
    ) -> Result<serde_json::Value, ApiError> {
        let token = self.wx_access_token(None).await?;
        let req = api::phone_number_request(self.cfg, &token, code, openid);
        match call_with_retry(self.wechat, req, api::parse_phone_number).await {
            Err(e) if e.is_token_error() => {
                let fresh = self.wx_access_token(Some(&token)).await?;
                let req = api::phone_number_request(self.cfg, &fresh, code, openid);
                Ok(call_with_retry(self.wechat, req, api::parse_phone_number)
                    .await
                    .map_err(PhoneCallError)?)
            }
            other => Ok(other.map_err(PhoneCallError)?),
        }
    }

    /// The WeChat API access_token (see [`WxTokenCache`](crate::wechat::access_token::WxTokenCache)).
    pub(crate) async fn wx_access_token(
        &self,
        refused: Option<&WxAccessToken>,
    ) -> Result<WxAccessToken, ApiError> {
        self.isolate
            .wx_token
            .get(self.store, self.wechat, self.cfg, self.now, refused)
            .await
    }
}
