//! The login flows, as plain async functions over a [`Store`], a WeChat
//! [`Transport`], a [`Random`] source and the current time.
//!
//! The worker shell builds an [`Edge`] per request from KV, `fetch`,
//! `crypto.getRandomValues` and `Date.now()`; the tests build one from an
//! in-memory store and a scripted transport.

use std::cell::RefCell;
use std::collections::HashSet;

use serde::Serialize;

use crate::config::{Config, SessionCheck};
use crate::error::ApiError;
use crate::headers::{bearer, Identity};
use crate::identity::{sign_identity, IdentityClaims};
use crate::phone::{phone_from_phone_info, EncryptedPhone, PhoneError, VerifiedPhone};
use crate::random::{self, Random};
use crate::secret::{ct_eq, WxAccessToken};
use crate::store::{
    allow_key, get_json, put_json, session_key, user_key, CachedWxToken, SessionRecord, Store,
    UserRecord, WX_TOKEN_KEY,
};
use crate::token::{
    issue_access, new_session_id, verify_access, verify_access_ignoring_expiry, AccessClaims,
    NewRefresh, ParsedRefresh, VerifiedAccess,
};
use crate::wechat::{self, api_error, call_with_retry, CallError, Transport};

/// Seconds during which an just-rotated refresh token still yields the
/// current one (concurrent refreshes from one client).
pub const REFRESH_GRACE: i64 = 30;
/// Refresh the cached WeChat access_token this long before it expires.
pub const WX_TOKEN_EARLY: i64 = 300;

/// Everything one request needs.
pub struct Edge<'a, S, T, R> {
    pub cfg: &'a Config,
    /// What concurrent requests of this isolate share: the WeChat
    /// access_token, and which sessions are being refreshed right now.
    pub isolate: &'a IsolateState,
    pub store: &'a S,
    pub wechat: &'a T,
    pub rng: &'a R,
    /// Unix seconds, from the runtime's clock.
    pub now: i64,
}

/// The body of a successful login, refresh or phone binding.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct TokenResponse {
    #[serde(rename = "phoneNumber", skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    #[serde(rename = "purePhoneNumber", skip_serializing_if = "Option::is_none")]
    pub pure_phone_number: Option<String>,
    #[serde(rename = "countryCode", skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub refresh_token: String,
    pub refresh_expires_in: u64,
    pub openid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unionid: Option<String>,
    pub phone_bound: bool,
}

/// `GET /auth/session`.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct SessionInfo {
    pub openid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unionid: Option<String>,
    pub phone_bound: bool,
    pub expires_at: i64,
    pub session_expires_at: i64,
}

/// A request whose access token checked out.
pub struct Authenticated {
    pub access: VerifiedAccess,
    /// Loaded when the session was checked in KV.
    pub session: Option<SessionRecord>,
}

fn ttl_until(expires_at: i64, now: i64) -> u64 {
    // KV refuses expirations under 60 s.
    u64::try_from(expires_at - now).unwrap_or(0).max(60)
}

impl<S: Store, T: Transport, R: Random> Edge<'_, S, T, R> {
    // ------------------------------------------------------------- tokens

    fn access_token_for(&self, sid: &str, s: &SessionRecord) -> Result<String, ApiError> {
        let mut claims = AccessClaims::new(&self.cfg.appid, &s.openid, sid);
        claims.unionid = s.unionid.clone();
        if let Some(p) = &s.phone {
            claims.phone = Some(p.pure_phone_number.clone());
            claims.phone_cc = Some(p.country_code.clone());
        }
        issue_access(&self.cfg.token_key, &claims, self.now, self.cfg.access_ttl)
    }

    fn token_response(
        &self,
        sid: &str,
        s: &SessionRecord,
        refresh: &NewRefresh,
    ) -> Result<TokenResponse, ApiError> {
        Ok(TokenResponse {
            phone_number: None,
            pure_phone_number: None,
            country_code: None,
            access_token: self.access_token_for(sid, s)?,
            token_type: "Bearer",
            expires_in: self.cfg.access_ttl,
            refresh_token: refresh.token.secret().to_string(),
            refresh_expires_in: ttl_until(s.expires_at, self.now),
            openid: s.openid.clone(),
            unionid: s.unionid.clone(),
            phone_bound: s.phone.is_some(),
        })
    }

    async fn save_session(&self, sid: &str, s: &SessionRecord) -> Result<(), ApiError> {
        put_json(
            self.store,
            &session_key(sid),
            s,
            Some(ttl_until(s.expires_at, self.now)),
        )
        .await
    }

    /// The phone to carry into a session: the user's bound one, unless the
    /// allowlist is on and the number has since been taken off it.
    async fn phone_still_allowed(
        &self,
        phone: Option<VerifiedPhone>,
    ) -> Result<Option<VerifiedPhone>, ApiError> {
        match phone {
            Some(p) if self.cfg.phone_allowlist => {
                let listed = self
                    .store
                    .get(&allow_key(&p.pure_phone_number))
                    .await?
                    .is_some();
                Ok(listed.then_some(p))
            }
            other => Ok(other),
        }
    }

    // -------------------------------------------------------------- login

    /// `POST /auth/login`.
    pub async fn login(
        &self,
        code: &str,
        client_ip: Option<&str>,
    ) -> Result<TokenResponse, ApiError> {
        let wx = wechat::code2session(self.wechat, self.cfg, code).await?;

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
            user.unionid = wx.unionid.clone();
        }
        user.last_login_at = self.now;
        user.last_login_ip = client_ip.map(str::to_string);
        user.login_count = user.login_count.saturating_add(1);

        let sid = new_session_id(self.rng)?;
        let refresh = NewRefresh::generate(&sid, self.rng)?;
        let session = SessionRecord {
            openid: wx.openid.clone(),
            unionid: user.unionid.clone(),
            session_key: wx.session_key,
            phone: self.phone_still_allowed(user.phone.clone()).await?,
            created_at: self.now,
            expires_at: self.now + self.cfg.refresh_ttl as i64,
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

    // ------------------------------------------------------------ refresh

    /// `POST /auth/refresh`: rotation with reuse detection.
    pub async fn refresh(&self, token: &str) -> Result<TokenResponse, ApiError> {
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
            s.expires_at = self.now + self.cfg.refresh_ttl as i64;
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

    async fn lock_session(&self, sid: &str) -> SessionLock<'_> {
        let mut waited_ms = 0;
        let limit_ms = self.cfg.wechat_timeout_ms.saturating_mul(2);
        while waited_ms < limit_ms && self.isolate.refreshing.borrow().contains(sid) {
            self.wechat.pause(MEMO_POLL_MS).await;
            waited_ms += u64::from(MEMO_POLL_MS);
        }
        self.isolate.refreshing.borrow_mut().insert(sid.to_string());
        SessionLock {
            isolate: self.isolate,
            sid: sid.to_string(),
        }
    }

    // ------------------------------------------------- authenticated calls

    /// Checks `Authorization: Bearer`; loads the session when `load_session`.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        load_session: bool,
    ) -> Result<Authenticated, ApiError> {
        let token = bearer(authorization).ok_or(ApiError::Unauthorized)?;
        let access = verify_access(&self.cfg.token_key, &self.cfg.appid, token, self.now)?;
        let session = if load_session {
            Some(self.live_session(&access).await?)
        } else {
            None
        };
        Ok(Authenticated { access, session })
    }

    async fn live_session(&self, access: &VerifiedAccess) -> Result<SessionRecord, ApiError> {
        let s: SessionRecord = get_json(self.store, &session_key(&access.claims.sid))
            .await?
            .ok_or(ApiError::SessionRevoked)?;
        if s.openid != access.claims.sub || s.expires_at <= self.now {
            return Err(ApiError::SessionRevoked);
        }
        Ok(s)
    }

    /// `POST /auth/logout`. An expired (but genuine) access token still
    /// logs out.
    pub async fn logout(&self, authorization: Option<&str>) -> Result<(), ApiError> {
        let token = bearer(authorization).ok_or(ApiError::Unauthorized)?;
        let access = verify_access_ignoring_expiry(&self.cfg.token_key, &self.cfg.appid, token)?;
        // "Just expired": within one more access-token lifetime, not any age.
        if self.now - access.expires_at > self.cfg.access_ttl as i64 {
            return Err(ApiError::TokenExpired);
        }
        self.store.delete(&session_key(&access.claims.sid)).await?;
        Ok(())
    }

    /// `GET /auth/session`.
    pub async fn session_info(&self, authorization: Option<&str>) -> Result<SessionInfo, ApiError> {
        let auth = self.authenticate(authorization, true).await?;
        let s = auth.session.ok_or(ApiError::SessionRevoked)?;
        Ok(SessionInfo {
            openid: s.openid,
            unionid: s.unionid,
            phone_bound: s.phone.is_some(),
            expires_at: auth.access.expires_at,
            session_expires_at: s.expires_at,
        })
    }

    // --------------------------------------------------------------- proxy

    /// Who a proxied request is, or why it may not pass. `Ok(None)`: a
    /// public path without a (valid) token.
    pub async fn proxy_identity(
        &self,
        path: &str,
        authorization: Option<&str>,
    ) -> Result<Option<Identity>, ApiError> {
        let public = self.cfg.is_public(path);
        if public && bearer(authorization).is_none() {
            return Ok(None);
        }
        let check = self.cfg.session_check == SessionCheck::EveryRequest;
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
                    .map(|p| (p, c.phone_cc.clone().unwrap_or_default())),
            ),
        };
        if self.cfg.require_phone && phone.is_none() && !public {
            return Err(ApiError::PhoneRequired);
        }
        let (phone, phone_country) = match phone {
            Some((p, cc)) => (Some(p), Some(cc).filter(|cc| !cc.is_empty())),
            None => (None, None),
        };
        Ok(Some(Identity {
            openid: c.sub.clone(),
            unionid,
            appid: self.cfg.appid.clone(),
            phone,
            phone_country,
        }))
    }

    /// The `X-WX-Identity` assertion for `id`, when `IDENTITY_KEY` is set.
    pub fn identity_assertion(&self, id: &Identity) -> Result<Option<String>, ApiError> {
        let Some(key) = &self.cfg.identity_key else {
            return Ok(None);
        };
        let jti: [u8; 16] = random::bytes(self.rng).map_err(|_| ApiError::Internal)?;
        let mut claims = IdentityClaims::new(
            &self.cfg.origin_audience,
            &self.cfg.appid,
            &id.openid,
            hex(&jti),
        );
        claims.unionid = id.unionid.clone();
        claims.phone = id.phone.clone();
        claims.phone_country = id.phone_country.clone();
        sign_identity(key, &claims, self.now).map(Some)
    }

    // --------------------------------------------------------------- phone

    /// `POST /auth/phone`: binds a phone WeChat vouches for, by the current
    /// `code` API or the legacy `encryptedData`/`iv`.
    pub async fn bind_phone(
        &self,
        authorization: Option<&str>,
        request: PhoneRequest<'_>,
    ) -> Result<TokenResponse, ApiError> {
        let auth = self.authenticate(authorization, true).await?;
        let s = auth.session.ok_or(ApiError::SessionRevoked)?;
        let sid = auth.access.claims.sid.clone();

        let phone = match request {
            PhoneRequest::Code(code) => {
                wechat::validate_code(code)?;
                let info = self.phone_number(code, &s.openid).await?;
                phone_from_phone_info(&info, &self.cfg.appid).map_err(|e| match e {
                    PhoneError::WatermarkMismatch => ApiError::WatermarkMismatch,
                    _ => ApiError::WechatUnavailable { errcode: None },
                })?
            }
            PhoneRequest::Encrypted(enc) => {
                enc.open(&s.session_key, &self.cfg.appid)
                    .map_err(|e| match e {
                        PhoneError::BadInput("session_key") => ApiError::Internal,
                        PhoneError::BadInput("iv") => {
                            ApiError::InvalidRequest("iv must be the base64 of 16 bytes")
                        }
                        PhoneError::BadInput(_) => ApiError::InvalidRequest(
                            "encryptedData must be base64 of whole AES blocks",
                        ),
                        PhoneError::WatermarkMismatch => ApiError::WatermarkMismatch,
                        _ => ApiError::DecryptFailed,
                    })?
            }
        };

        if self.cfg.phone_allowlist
            && self
                .store
                .get(&allow_key(&phone.pure_phone_number))
                .await?
                .is_none()
        {
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
    async fn phone_number(&self, code: &str, openid: &str) -> Result<serde_json::Value, ApiError> {
        let token = self.wx_access_token(None).await?;
        let req = wechat::phone_number_request(self.cfg, &token, code, openid);
        match call_with_retry(self.wechat, req, wechat::parse_phone_number).await {
            Err(e) if e.is_token_error() => {
                let fresh = self.wx_access_token(Some(&token)).await?;
                let req = wechat::phone_number_request(self.cfg, &fresh, code, openid);
                call_with_retry(self.wechat, req, wechat::parse_phone_number)
                    .await
                    .map_err(phone_call_error)
            }
            other => other.map_err(phone_call_error),
        }
    }

    /// The WeChat access_token: from this isolate's memo, else KV, else
    /// `stable_token`; `refused` is one WeChat just rejected. Concurrent
    /// callers in one isolate share a single fetch.
    pub async fn wx_access_token(
        &self,
        refused: Option<&WxAccessToken>,
    ) -> Result<WxAccessToken, ApiError> {
        let usable = |t: &CachedWxToken| {
            t.expires_at - self.now > WX_TOKEN_EARLY
                && refused.is_none_or(|bad| {
                    !ct_eq(t.access_token.secret().as_bytes(), bad.secret().as_bytes())
                })
        };
        // Another request of this isolate is fetching: wait for its result
        // by polling, not by being woken from that request (workerd forbids
        // one request's I/O from running in another's context).
        let mut waited_ms = 0;
        let limit_ms = self.cfg.wechat_timeout_ms.saturating_mul(3);
        loop {
            {
                let mut memo = self.isolate.wx.borrow_mut();
                if let Some(t) = memo.token.as_ref().filter(|t| usable(t)) {
                    return Ok(t.access_token.clone());
                }
                if !memo.in_flight || waited_ms >= limit_ms {
                    memo.in_flight = true;
                    break;
                }
            }
            self.wechat.pause(MEMO_POLL_MS).await;
            waited_ms += u64::from(MEMO_POLL_MS);
        }
        let guard = InFlight(self.isolate);
        let result = self.fetch_wx_token(refused).await;
        guard.finish(&result);
        result.map(|t| t.access_token)
    }

    async fn fetch_wx_token(
        &self,
        refused: Option<&WxAccessToken>,
    ) -> Result<CachedWxToken, ApiError> {
        if refused.is_none() {
            if let Some(c) = get_json::<S, CachedWxToken>(self.store, WX_TOKEN_KEY).await? {
                if c.expires_at - self.now > WX_TOKEN_EARLY {
                    return Ok(c);
                }
            }
        }
        let fetch = |force: bool| {
            call_with_retry(
                self.wechat,
                wechat::stable_token_request(self.cfg, force),
                wechat::parse_stable_token,
            )
        };
        let mut t = fetch(false).await.map_err(api_error)?;
        if let Some(bad) = refused {
            if ct_eq(t.access_token.secret().as_bytes(), bad.secret().as_bytes()) {
                // Normal mode handed back the token WeChat just refused.
                t = fetch(true).await.map_err(api_error)?;
            }
        }
        let cached = CachedWxToken {
            access_token: t.access_token,
            expires_at: self.now + t.expires_in as i64,
        };
        put_json(
            self.store,
            WX_TOKEN_KEY,
            &cached,
            Some(t.expires_in.max(60)),
        )
        .await?;
        Ok(cached)
    }
}

/// State shared by the concurrent requests of one isolate.
#[derive(Default)]
pub struct IsolateState {
    /// The WeChat access_token as this isolate knows it.
    wx: RefCell<MemoState>,
    /// Sessions whose refresh token is being rotated by a request now.
    refreshing: RefCell<HashSet<String>>,
}

#[derive(Default)]
struct MemoState {
    token: Option<CachedWxToken>,
    in_flight: bool,
}

/// Held while a session's refresh token rotates; released on drop.
struct SessionLock<'a> {
    isolate: &'a IsolateState,
    sid: String,
}

impl Drop for SessionLock<'_> {
    fn drop(&mut self) {
        self.isolate.refreshing.borrow_mut().remove(&self.sid);
    }
}

/// How often a request waiting for another's token fetch looks again.
const MEMO_POLL_MS: u32 = 20;

/// Marks a fetch in flight; cleared however the fetch ends, even if the
/// fetching request is dropped midway (the waiters then fetch themselves).
struct InFlight<'a>(&'a IsolateState);

impl InFlight<'_> {
    fn finish(self, result: &Result<CachedWxToken, ApiError>) {
        if let Ok(t) = result {
            self.0.wx.borrow_mut().token = Some(t.clone());
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.wx.borrow_mut().in_flight = false;
    }
}

/// getuserphonenumber's errors: its 40029 is about the phone code, not login.
fn phone_call_error(e: CallError) -> ApiError {
    match e {
        CallError::Errcode(code @ (40029 | 40163)) => ApiError::InvalidPhoneCode { errcode: code },
        other => api_error(other),
    }
}

/// What `/auth/phone` was sent.
pub enum PhoneRequest<'a> {
    Code(&'a str),
    Encrypted(EncryptedPhone),
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
