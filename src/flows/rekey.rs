//! `POST /auth/session/rekey`: after `wx.checkSession` failed, the
//! mini-program sends a fresh `wx.login` code, and its session's key is
//! replaced by the one code2Session returns — without a new session, so
//! legacy open data sealed under the new key opens.

use serde_json::{Map, Value};

use super::{Edge, Platform};
use crate::authority::{AuthorityClient, ReplaceKey};
use crate::config::SessionCheck;
use crate::error::ApiError;
use crate::http::body::login_code;
use crate::ids::WxCode;
use crate::limits::{client_key, Limit};
use crate::wechat::api;

impl<P: Platform> Edge<'_, P> {
    /// Checks the access token and its session (401s as `/auth/session`),
    /// then spends the code as a login does (the login limit per client
    /// address and the code2Session ceiling, before WeChat is asked). A
    /// code of another WeChat user is 409 `openid_mismatch` and changes
    /// nothing; a session that ended meanwhile is 401 `session_revoked`.
    pub(crate) async fn rekey(
        &self,
        authorization: Option<&str>,
        client_ip: Option<&str>,
        body: &Map<String, Value>,
    ) -> Result<(), ApiError> {
        let auth = self
            .authenticate(authorization, SessionCheck::Authority)
            .await?;
        let code = WxCode::parse(login_code(body)?)?;
        self.within_limit(Limit::Login, &client_key(client_ip))
            .await?;
        self.within_limit(Limit::Code2Session, self.cfg.appid.as_str())
            .await?;
        let wx = api::code2session(self.wechat, self.cfg, &code).await?;
        let subject = auth.access.claims.subject;
        if wx.openid != subject.openid {
            return Err(ApiError::OpenidMismatch);
        }
        let replace = ReplaceKey {
            sid: auth.access.claims.sid,
            session_key: wx.session_key,
        };
        Ok(self.authority.call(&subject.openid, replace).await??)
    }
}
