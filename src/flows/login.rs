//! `POST /auth/login`: a `wx.login` code becomes a session and a token pair.

use super::{Edge, TokenResponse};
use crate::error::ApiError;
use crate::ids::{SessionId, WxCode};
use crate::random::Random;
use crate::store::{get_json, put_json, user_key, SessionRecord, Store, UserRecord};
use crate::token::refresh::NewRefresh;
use crate::wechat::{api, Transport};

impl<S: Store, T: Transport, R: Random> Edge<'_, S, T, R> {
    /// Exchanges the code with WeChat (code2Session), records the login on
    /// the user record and opens a new session holding the session_key.
    pub(crate) async fn login(
        &self,
        code: &str,
        client_ip: Option<&str>,
    ) -> Result<TokenResponse, ApiError> {
        let code = WxCode::parse(code)?;
        let wx = api::code2session(self.wechat, self.cfg, &code).await?;

        let mut user: UserRecord = get_json(self.store, &user_key(&wx.openid))
            .await?
            .unwrap_or(UserRecord {
                openid: wx.openid.clone(),
                unionid: None,
                first_login_at: self.now,
                last_login_at: self.now,
                last_login_ip: None,
                login_count: 0,
                phone: None,
                phone_bound_at: None,
            });
        if wx.unionid.is_some() {
            user.unionid.clone_from(&wx.unionid);
        }
        user.last_login_at = self.now;
        user.last_login_ip = client_ip.map(str::to_string);
        user.login_count = user.login_count.saturating_add(1);

        let sid = SessionId::generate(self.rng)?;
        let refresh = NewRefresh::generate(&sid, self.rng)?;
        let session = SessionRecord {
            openid: wx.openid.clone(),
            unionid: user.unionid.clone(),
            session_key: wx.session_key,
            phone: self.phone_still_allowed(user.phone.clone()).await?,
            created_at: self.now,
            expires_at: self.now + self.cfg.refresh_ttl_secs(),
            refresh_hash: refresh.hash.clone(),
            prev_hash: None,
            rotated_at: None,
            sealed_current: None,
            retired: Vec::new(),
        };
        self.save_session(&sid, &session).await?;
        put_json(self.store, &user_key(&user.openid), &user, None).await?;
        self.token_response(&sid, &session, &refresh)
    }
}
