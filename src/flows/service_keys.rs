//! The service endpoints' session-key operations, for the origin's
//! servers (`/auth/service/users/{openid}/…`, admitted by `service`
//! behind `SERVICE_TOKEN`): WeChat's `checksession` and
//! `resetusersessionkey`, the virtual-payment signature, and open data.
//!
//! The session key never leaves the user's authority: it signs and opens,
//! and these answer with what it answered. None of them makes an
//! authority keep anything for a user who has no record: each either
//! only reads, or changes a session that exists.

use serde::Serialize;
use serde_json::{Map, Value};

use super::{Edge, Platform};
use crate::authority::{
    AuthorityClient, NoLiveSession, OpenData, ReplaceKey, SessionEnded, SignLatest, Signed,
};
use crate::error::ApiError;
use crate::http::body::{string_field, MAX_BODY_BYTES};
use crate::ids::OpenId;
use crate::wechat::api::{self, SessionKeyApi};
use crate::wechat::open_data::EncryptedData;
use crate::wechat::{call_with_retry, CallError, HttpResponse};

/// `POST /auth/service/users/{openid}/session-key/check`.
#[derive(Debug, Serialize)]
pub(crate) struct KeyValid {
    pub(crate) valid: bool,
}

/// `POST /auth/service/users/{openid}/session-key/reset`.
#[derive(Debug, Serialize)]
pub(crate) struct KeyReset {
    pub(crate) reset: bool,
}

/// `POST /auth/service/users/{openid}/sign`.
#[derive(Debug, Serialize)]
pub(crate) struct Signature {
    pub(crate) signature: String,
    pub(crate) sig_method: &'static str,
}

/// `POST /auth/service/users/{openid}/decrypt`.
#[derive(Debug, Serialize)]
pub(crate) struct Decrypted {
    pub(crate) data: Value,
}

/// The only signature method WeChat's login-state signature has.
const SIG_METHOD: &str = "hmac_sha256";

impl<P: Platform> Edge<'_, P> {
    /// `checksession` with the newest live session's key: `{"valid":
    /// true}` when WeChat accepts its signature, `false` on 87009.
    pub(crate) async fn service_check(&self, openid: &OpenId) -> Result<KeyValid, ApiError> {
        let signed = self.sign_latest(openid, String::new()).await?;
        let valid = self
            .session_key_call(
                SessionKeyApi::Check,
                openid,
                &signed,
                api::parse_check_session,
            )
            .await?;
        Ok(KeyValid { valid })
    }

    /// `resetusersessionkey`, signed with the newest live session's key;
    /// the new key replaces that session's. A reply for another openid
    /// is WeChat's failure (502), and nothing is stored. If the session
    /// ended meanwhile there is nothing to replace: the reset happened
    /// all the same.
    pub(crate) async fn service_reset(&self, openid: &OpenId) -> Result<KeyReset, ApiError> {
        let signed = self.sign_latest(openid, String::new()).await?;
        let new = self
            .session_key_call(
                SessionKeyApi::Reset,
                openid,
                &signed,
                api::parse_reset_session_key,
            )
            .await?;
        if new.openid != *openid {
            return Err(ApiError::WechatUnavailable { errcode: None });
        }
        let replace = ReplaceKey {
            sid: signed.sid,
            session_key: new.session_key,
        };
        match self.authority.call(openid, replace).await? {
            Ok(()) | Err(SessionEnded) => Ok(KeyReset { reset: true }),
        }
    }

    /// The virtual-payment user-state signature of `data` (a non-empty
    /// string: the empty string's signature is the one the session-key
    /// APIs take, and stays at the edge).
    pub(crate) async fn service_sign(
        &self,
        openid: &OpenId,
        body: &Map<String, Value>,
    ) -> Result<Signature, ApiError> {
        let data = string_field(body, "data", MAX_BODY_BYTES, "data must be a string")?
            .ok_or(ApiError::InvalidRequest("data is missing or empty"))?;
        let signed = self.sign_latest(openid, data.to_string()).await?;
        Ok(Signature {
            signature: signed.signature,
            sig_method: SIG_METHOD,
        })
    }

    /// Open data, opened by the user's authority with the live sessions'
    /// keys, newest first: the decrypted JSON object, watermark included.
    /// `/auth/phone`'s rules apply: this app's watermark, fresh data, and
    /// a failure counted against the newest live session (five revoke
    /// it).
    pub(crate) async fn service_decrypt(
        &self,
        openid: &OpenId,
        body: &Map<String, Value>,
    ) -> Result<Decrypted, ApiError> {
        let encrypted_data = string_field(
            body,
            "encryptedData",
            MAX_BODY_BYTES,
            "encryptedData must be a string",
        )?;
        let iv = string_field(
            body,
            "iv",
            64,
            "iv must be a string of at most 64 characters",
        )?;
        let (Some(encrypted_data), Some(iv)) = (encrypted_data, iv) else {
            return Err(ApiError::InvalidRequest(
                "encryptedData and iv are required",
            ));
        };
        let open = OpenData {
            encrypted: EncryptedData {
                encrypted_data: encrypted_data.to_string(),
                iv: iv.to_string(),
            },
        };
        let text = self.authority.call(openid, open).await??;
        // The authority answers a JSON object's text, or refuses.
        let data = serde_json::from_str(&text).map_err(|_| ApiError::Internal)?;
        Ok(Decrypted { data })
    }

    /// `data` signed by the user's authority with its newest live
    /// session's key; 404 when the user has none.
    async fn sign_latest(&self, openid: &OpenId, data: String) -> Result<Signed, ApiError> {
        let signed = self.authority.call(openid, SignLatest { data }).await?;
        signed.map_err(|NoLiveSession| ApiError::NoLiveSession)
    }

    /// A session-key API call for `openid`, signed as `signed`, with the
    /// cached access_token; on a token error the token is fetched again
    /// once and the call retried.
    async fn session_key_call<R>(
        &self,
        which: SessionKeyApi,
        openid: &OpenId,
        signed: &Signed,
        parse: impl Fn(&HttpResponse) -> Result<R, CallError>,
    ) -> Result<R, ApiError> {
        let token = self.wx_access_token(None).await?;
        let req = api::session_key_request(self.cfg, which, &token, openid, &signed.signature);
        match call_with_retry(self.wechat, req, &parse).await {
            Err(e) if e.is_token_error() => {
                let fresh = self.wx_access_token(Some(&token)).await?;
                let req =
                    api::session_key_request(self.cfg, which, &fresh, openid, &signed.signature);
                Ok(call_with_retry(self.wechat, req, &parse).await?)
            }
            other => Ok(other?),
        }
    }
}
