//! `POST /auth/phone`: binds a phone WeChat vouches for, by the current
//! `code` API or the legacy `encryptedData`/`iv`.

use super::{Edge, PhoneResponse, Platform};
use crate::authority::{AuthorityClient, BindEncrypted, BindPhone};
use crate::config::SessionCheck;
use crate::error::{ApiError, PhoneCallError};
use crate::http::body::PhoneRequest;
use crate::ids::{OpenId, WxCode};
use crate::limits::Limit;
use crate::phone::Phone;
use crate::secret::WxAccessToken;
use crate::wechat::{api, call_with_retry};

impl<P: Platform> Edge<'_, P> {
    /// Verifies the phone and has the user's authority bind it (after the
    /// allowlist check) to the user record and this session; answers the
    /// phone and an access token issued now, carrying it. The refresh
    /// token is not rotated (the client keeps the one it holds), so a
    /// repeated, lost or racing bind never ends the session. Legacy data
    /// is decrypted by the authority, with the session's key, which never
    /// leaves it.
    pub(crate) async fn bind_phone(
        &self,
        authorization: Option<&str>,
        request: PhoneRequest<'_>,
    ) -> Result<PhoneResponse, ApiError> {
        // A dead session is refused before WeChat is asked; the authority
        // checks again at the moment it binds.
        let check = match self.cfg.session_check {
            SessionCheck::Authority => SessionCheck::Authority,
            SessionCheck::RefreshOnly | SessionCheck::EveryRequest => SessionCheck::EveryRequest,
        };
        let auth = self.authenticate(authorization, check).await?;
        self.within_limit(Limit::Phone, auth.access.claims.subject.openid.as_str())
            .await?;
        let openid = auth.access.claims.subject.openid;
        let sid = auth.access.claims.sid;

        let bound = match request {
            PhoneRequest::Code(code) => {
                let code = WxCode::parse(code)?;
                let info = self.phone_number(&code, &openid).await?;
                let bind = BindPhone {
                    sid: sid.clone(),
                    phone: Phone::from_phone_info(&info, self.cfg.appid.as_str())?,
                };
                self.authority.call(&openid, bind).await??
            }
            PhoneRequest::Encrypted(encrypted) => {
                let bind = BindEncrypted {
                    sid: sid.clone(),
                    encrypted,
                };
                self.authority.call(&openid, bind).await??
            }
        };
        self.replica_changed(&sid);
        let (phone, view) = (bound.phone, bound.session);
        Ok(PhoneResponse {
            phone_number: phone.phone_number().map(str::to_owned),
            pure_phone_number: phone.pure_phone_number().to_owned(),
            country_code: phone.country_code().to_owned(),
            access_token: self.access_token(&sid, &view, self.now)?,
            token_type: "Bearer",
            expires_in: self.cfg.access_ttl,
            openid: view.openid.to_string(),
            unionid: view.unionid,
            phone_bound: view.phone.is_some(),
        })
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

    /// The WeChat API access_token (see
    /// [`WxTokenCache`](crate::wechat::access_token::WxTokenCache)).
    pub(crate) async fn wx_access_token(
        &self,
        refused: Option<&WxAccessToken>,
    ) -> Result<WxAccessToken, ApiError> {
        self.isolate
            .wx_token
            .get(self.store, self.wechat, self.cfg, self.now, refused)
            .await
            .map_err(ApiError::from)
    }
}
