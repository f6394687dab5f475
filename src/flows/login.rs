//! `POST /auth/login`: a `wx.login` code becomes a session and a token pair.

use super::{Edge, Platform, TokenResponse};
use crate::authority::{AuthorityClient, Login};
use crate::error::ApiError;
use crate::ids::{SessionId, WxCode};
use crate::limits::{client_key, Limit};
use crate::token::refresh::NewRefresh;
use crate::wechat::api;

impl<P: Platform> Edge<'_, P> {
    /// Exchanges the code with WeChat (code2Session); the user's authority
    /// records the login and opens a session holding the session_key.
    pub(crate) async fn login(
        &self,
        code: &str,
        client_ip: Option<&str>,
    ) -> Result<TokenResponse, ApiError> {
        let code = WxCode::parse(code)?;
        // Before WeChat is asked: a flood of codes must not spend the
        // app's quota.
        self.within_limit(Limit::Login, &client_key(client_ip))
            .await?;
        // The location's ceiling on code2Session, whatever the addresses:
        // the quota is the app's.
        self.within_limit(Limit::Code2Session, self.cfg.appid.as_str())
            .await?;
        let wx = api::code2session(self.wechat, self.cfg, &code).await?;
        let sid = SessionId::generate(self.rng)?;
        let refresh = NewRefresh::generate(&self.cfg.refresh_key, &wx.openid, &sid, self.rng)?;
        let login = Login {
            sid: sid.clone(),
            session_key: wx.session_key,
            unionid: wx.unionid,
            refresh_hash: refresh.hash.clone(),
            ip: client_ip.map(str::to_string),
        };
        let view = self.authority.call(&wx.openid, login).await?;
        self.token_response(&sid, &view, &refresh.token)
    }
}
