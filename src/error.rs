//! Every error the worker answers with, and the one pure table that turns
//! an error into an HTTP status and a JSON body.
//!
//! Messages are written for the mini-program developer reading them in
//! devtools. They never carry a secret, a session_key, a token or an
//! upstream body: variants hold only codes and static text.

use serde::Serialize;

use crate::logs::Failure;

mod phases;
pub(crate) use phases::PhoneCallError;

/// An error as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum ApiError {
    /// Malformed body, missing or oversized field. The text says which.
    InvalidRequest(&'static str),
    /// WeChat 40029 / 40163: the `wx.login` (or phone) code is invalid or used.
    InvalidCode {
        errcode: i64,
    },
    /// The same for a getPhoneNumber code (getuserphonenumber 40029).
    InvalidPhoneCode {
        errcode: i64,
    },
    /// Legacy phone data did not decrypt with the session's session_key.
    DecryptFailed,
    /// Decrypted data belongs to another appid.
    WatermarkMismatch,
    /// A re-key with a `wx.login` code of another WeChat user.
    OpenidMismatch,
    /// A service call about a user who has no live session (404
    /// `not_found`, as for an unknown user).
    NoLiveSession,
    Unauthorized,
    InvalidToken,
    TokenExpired,
    SessionRevoked,
    InvalidRefreshToken,
    RefreshReused,
    /// WeChat 40226.
    UserBlocked {
        errcode: i64,
    },
    PhoneRequired,
    NotInternalUser,
    /// The WeChat relay never calls this path (it hands out credentials
    /// or session keys), or `WX_RELAY_PATHS` does not list it.
    RelayRefused,
    NotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    /// WeChat 45011 (or any other rate limit).
    RateLimited {
        errcode: Option<i64>,
    },
    /// Configuration missing or invalid: names the variable, never its value.
    ServerMisconfigured {
        variable: &'static str,
        problem: &'static str,
    },
    /// WeChat failed: -1 after a retry, 5xx, timeout, unparseable reply, or
    /// an errcode we do not expect (`errcode` is then WeChat's).
    WechatUnavailable {
        errcode: Option<i64>,
    },
    OriginUnavailable,
    /// KV or the session authority failed or timed out; nothing was
    /// half-written and the request may be retried.
    StoreUnavailable,
    /// A failure of our own (KV, serialization). Details go to the log only.
    Internal,
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(crate) struct ErrorBody {
    pub(crate) error: &'static str,
    pub(crate) message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) wechat_errcode: Option<i64>,
}

impl ApiError {
    /// The contract's `error` code.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest(_) => "invalid_request",
            ApiError::InvalidCode { .. } | ApiError::InvalidPhoneCode { .. } => "invalid_code",
            ApiError::DecryptFailed => "decrypt_failed",
            ApiError::WatermarkMismatch => "watermark_mismatch",
            ApiError::OpenidMismatch => "openid_mismatch",
            ApiError::Unauthorized => "unauthorized",
            ApiError::InvalidToken => "invalid_token",
            ApiError::TokenExpired => "token_expired",
            ApiError::SessionRevoked => "session_revoked",
            ApiError::InvalidRefreshToken => "invalid_refresh_token",
            ApiError::RefreshReused => "refresh_reused",
            ApiError::UserBlocked { .. } => "user_blocked",
            ApiError::PhoneRequired => "phone_required",
            ApiError::NotInternalUser => "not_internal_user",
            ApiError::RelayRefused => "relay_refused",
            ApiError::NotFound | ApiError::NoLiveSession => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::ServerMisconfigured { .. } | ApiError::Internal => "server_misconfigured",
            ApiError::WechatUnavailable { .. } => "wechat_unavailable",
            ApiError::OriginUnavailable => "origin_unavailable",
            ApiError::StoreUnavailable => "store_unavailable",
        }
    }

    pub(crate) fn status(&self) -> u16 {
        match self {
            ApiError::InvalidRequest(_)
            | ApiError::InvalidCode { .. }
            | ApiError::InvalidPhoneCode { .. }
            | ApiError::DecryptFailed
            | ApiError::WatermarkMismatch => 400,
            ApiError::Unauthorized
            | ApiError::InvalidToken
            | ApiError::TokenExpired
            | ApiError::SessionRevoked
            | ApiError::InvalidRefreshToken
            | ApiError::RefreshReused => 401,
            ApiError::UserBlocked { .. }
            | ApiError::PhoneRequired
            | ApiError::NotInternalUser
            | ApiError::RelayRefused => 403,
            ApiError::NotFound | ApiError::NoLiveSession => 404,
            ApiError::MethodNotAllowed => 405,
            ApiError::OpenidMismatch => 409,
            ApiError::PayloadTooLarge => 413,
            ApiError::RateLimited { .. } => 429,
            ApiError::ServerMisconfigured { .. } | ApiError::Internal => 500,
            ApiError::WechatUnavailable { .. } | ApiError::OriginUnavailable => 502,
            ApiError::StoreUnavailable => 503,
        }
    }

    pub(crate) fn wechat_errcode(&self) -> Option<i64> {
        match self {
            ApiError::InvalidCode { errcode }
            | ApiError::InvalidPhoneCode { errcode }
            | ApiError::UserBlocked { errcode } => Some(*errcode),
            ApiError::RateLimited { errcode } | ApiError::WechatUnavailable { errcode } => *errcode,
            _ => None,
        }
    }

    pub(crate) fn message(&self) -> String {
        match self {
            ApiError::InvalidRequest(what) => format!("invalid request: {what}"),
            ApiError::InvalidCode { errcode: 40163 } => {
                "this code was already used; call wx.login() (or the phone button) again for a new one"
                    .into()
            }
            ApiError::InvalidCode { .. } => {
                "WeChat rejected the code as invalid or expired; call wx.login() again for a new one \
                 (a getPhoneNumber code is not a wx.login code, and the reverse)"
                    .into()
            }
            ApiError::InvalidPhoneCode { .. } => {
                "WeChat rejected the getPhoneNumber code as invalid, expired or used; ask the user to \
                 tap the phone button again (a wx.login code does not work here)"
                    .into()
            }
            ApiError::DecryptFailed => {
                "the phone data does not decrypt with this session's session_key: it was most likely \
                 rotated by a later wx.login(); log in again, then ask for the phone number again"
                    .into()
            }
            ApiError::WatermarkMismatch => {
                "the decrypted data was issued to another mini-program (watermark appid differs)".into()
            }
            ApiError::OpenidMismatch => "this code belongs to another WeChat user".into(),
            ApiError::NoLiveSession => "this user has no live session".into(),
            ApiError::Unauthorized => "an Authorization: Bearer <access_token> header is required".into(),
            ApiError::InvalidToken => "the access token is malformed, badly signed or not an access token".into(),
            ApiError::TokenExpired => "the access token has expired; use /auth/refresh".into(),
            ApiError::SessionRevoked => "the session was logged out or revoked; log in again".into(),
            ApiError::InvalidRefreshToken => {
                "the refresh token is unknown, expired or already replaced; log in again".into()
            }
            ApiError::RefreshReused => {
                "a refresh token was used twice, so the session was revoked for safety; log in again".into()
            }
            ApiError::UserBlocked { .. } => "WeChat blocked this user as high-risk".into(),
            ApiError::PhoneRequired => "bind a phone number (POST /auth/phone) before using this API".into(),
            ApiError::NotInternalUser => "this phone number is not on the staff list".into(),
            ApiError::RelayRefused => {
                "this WeChat API hands out credentials or session keys, or WX_RELAY_PATHS does not list it"
                    .into()
            }
            ApiError::NotFound => "no such endpoint".into(),
            ApiError::MethodNotAllowed => "method not allowed for this endpoint".into(),
            ApiError::PayloadTooLarge => {
                "request body too large (16 KiB; 2 MiB through the WeChat relay)".into()
            }
            ApiError::RateLimited { errcode: Some(_) } => {
                "WeChat is rate-limiting this app; try again in a minute".into()
            }
            ApiError::RateLimited { errcode: None } => {
                "too many requests; wait as Retry-After says, then try again".into()
            }
            ApiError::ServerMisconfigured { variable, problem } => {
                format!("server misconfigured: {variable} {problem}")
            }
            ApiError::Internal => "internal error; the worker's log has details".into(),
            ApiError::WechatUnavailable { errcode: Some(code) } => {
                format!("WeChat answered with an unexpected error (errcode {code})")
            }
            ApiError::WechatUnavailable { errcode: None } => {
                "WeChat did not answer in time or answered with an error; try again".into()
            }
            ApiError::OriginUnavailable => "the origin API could not be reached".into(),
            ApiError::StoreUnavailable => {
                "session storage is briefly unavailable; try again; a change already saved is finished by the authority".into()
            }
        }
    }

    /// The response: status and JSON body.
    pub(crate) fn to_response(&self) -> (u16, String) {
        let body = ErrorBody {
            error: self.code(),
            message: self.message(),
            wechat_errcode: self.wechat_errcode(),
        };
        // Serializing a struct of strings and integers cannot fail; fall back
        // to a fixed body rather than panicking all the same.
        let json = serde_json::to_string(&body).unwrap_or_else(|_| {
            r#"{"error":"server_misconfigured","message":"internal error"}"#.to_string()
        });
        (self.status(), json)
    }
}

/// The header marking a response as the worker's own error (not the
/// origin's): clients refresh only on a 401 that carries it.
pub(crate) const EDGE_ERROR_HEADER: &str = "X-WX-Edge-Error";

/// Seconds a client waits before retrying after `store_unavailable`.
pub(crate) const STORE_RETRY_AFTER: u32 = 2;

impl ApiError {
    /// Headers every error response carries besides the JSON content type:
    /// the marker, and for 401 the RFC 6750 challenge.
    pub(crate) fn extra_headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![(EDGE_ERROR_HEADER, self.code().to_string())];
        match self {
            ApiError::StoreUnavailable => {
                h.push(("Retry-After", STORE_RETRY_AFTER.to_string()));
            }
            ApiError::RateLimited { .. } => {
                h.push(("Retry-After", crate::limits::RETRY_AFTER.to_string()));
            }
            _ => {}
        }
        if self.status() == 401 {
            let error = match self {
                ApiError::Unauthorized => None,
                _ => Some("invalid_token"),
            };
            let challenge = match error {
                None => r#"Bearer realm="wx-edge""#.to_string(),
                Some(e) => format!(r#"Bearer realm="wx-edge", error="{e}""#),
            };
            h.push(("WWW-Authenticate", challenge));
        }
        h
    }
}

impl From<&ApiError> for Failure {
    /// What the log records of an error: its code, status and WeChat errcode.
    fn from(e: &ApiError) -> Self {
        Failure {
            code: e.code(),
            status: e.status(),
            wechat_errcode: e.wechat_errcode(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code(), self.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;
    use crate::wechat::access_token::WxTokenError;
    use crate::wechat::open_data::OpenDataError;
    use crate::wechat::{CallError, TransportError};

    fn body(e: &ApiError) -> serde_json::Value {
        let (_, json) = e.to_response();
        serde_json::from_str(&json).expect("error bodies are JSON")
    }

    #[test]
    fn the_contract_table() {
        let rows: Vec<(ApiError, u16, &str)> = vec![
            (
                ApiError::InvalidRequest("code missing"),
                400,
                "invalid_request",
            ),
            (
                ApiError::InvalidCode { errcode: 40029 },
                400,
                "invalid_code",
            ),
            (
                ApiError::InvalidCode { errcode: 40163 },
                400,
                "invalid_code",
            ),
            (ApiError::DecryptFailed, 400, "decrypt_failed"),
            (ApiError::WatermarkMismatch, 400, "watermark_mismatch"),
            (ApiError::OpenidMismatch, 409, "openid_mismatch"),
            (ApiError::NoLiveSession, 404, "not_found"),
            (ApiError::Unauthorized, 401, "unauthorized"),
            (ApiError::InvalidToken, 401, "invalid_token"),
            (ApiError::TokenExpired, 401, "token_expired"),
            (ApiError::SessionRevoked, 401, "session_revoked"),
            (ApiError::InvalidRefreshToken, 401, "invalid_refresh_token"),
            (ApiError::RefreshReused, 401, "refresh_reused"),
            (
                ApiError::UserBlocked { errcode: 40226 },
                403,
                "user_blocked",
            ),
            (ApiError::PhoneRequired, 403, "phone_required"),
            (ApiError::NotInternalUser, 403, "not_internal_user"),
            (ApiError::RelayRefused, 403, "relay_refused"),
            (ApiError::NotFound, 404, "not_found"),
            (ApiError::MethodNotAllowed, 405, "method_not_allowed"),
            (ApiError::PayloadTooLarge, 413, "payload_too_large"),
            (
                ApiError::RateLimited {
                    errcode: Some(45011),
                },
                429,
                "rate_limited",
            ),
            (
                ApiError::ServerMisconfigured {
                    variable: "TOKEN_SECRET",
                    problem: "is missing",
                },
                500,
                "server_misconfigured",
            ),
            (
                ApiError::WechatUnavailable { errcode: None },
                502,
                "wechat_unavailable",
            ),
            (ApiError::OriginUnavailable, 502, "origin_unavailable"),
            (ApiError::StoreUnavailable, 503, "store_unavailable"),
        ];
        for (err, status, code) in rows {
            let (got_status, _) = err.to_response();
            assert_eq!(got_status, status, "{err:?}");
            let b = body(&err);
            assert_eq!(b["error"], code, "{err:?}");
            assert!(b["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
    }

    #[test]
    fn wechat_errcode_only_when_wechat_caused_it() {
        assert_eq!(
            body(&ApiError::InvalidCode { errcode: 40029 })["wechat_errcode"],
            40029
        );
        assert_eq!(
            body(&ApiError::UserBlocked { errcode: 40226 })["wechat_errcode"],
            40226
        );
        assert_eq!(
            body(&ApiError::RateLimited {
                errcode: Some(45011)
            })["wechat_errcode"],
            45011
        );
        assert!(body(&ApiError::RateLimited { errcode: None })
            .get("wechat_errcode")
            .is_none());
        assert!(body(&ApiError::InvalidToken)
            .get("wechat_errcode")
            .is_none());
    }

    #[test]
    fn error_responses_are_marked_as_the_workers() {
        let h = ApiError::TokenExpired.extra_headers();
        assert!(h.contains(&(EDGE_ERROR_HEADER, "token_expired".to_string())));
        assert!(h.contains(&(
            "WWW-Authenticate",
            r#"Bearer realm="wx-edge", error="invalid_token""#.to_string()
        )));
        let h = ApiError::Unauthorized.extra_headers();
        assert!(h.contains(&("WWW-Authenticate", r#"Bearer realm="wx-edge""#.to_string())));
        let h = ApiError::OriginUnavailable.extra_headers();
        assert_eq!(
            h,
            vec![(EDGE_ERROR_HEADER, "origin_unavailable".to_string())]
        );
    }

    #[test]
    fn store_unavailable_says_when_to_retry() {
        let h = ApiError::StoreUnavailable.extra_headers();
        assert!(h.contains(&("Retry-After", STORE_RETRY_AFTER.to_string())));
        assert_eq!(ApiError::from(StoreError), ApiError::StoreUnavailable);
        // Nothing else asks for a retry by header.
        assert!(!ApiError::Internal
            .extra_headers()
            .iter()
            .any(|(n, _)| *n == "Retry-After"));
    }

    #[test]
    fn misconfiguration_names_the_variable() {
        let b = body(&ApiError::ServerMisconfigured {
            variable: "WX_APPID",
            problem: "is missing",
        });
        assert_eq!(b["message"], "server misconfigured: WX_APPID is missing");
    }

    /// The contract's sentences for the re-key and service answers.
    #[test]
    fn openid_mismatch_and_no_live_session_say_what_happened() {
        let b = body(&ApiError::OpenidMismatch);
        assert_eq!(b["error"], "openid_mismatch");
        assert_eq!(b["message"], "this code belongs to another WeChat user");
        assert!(b.get("wechat_errcode").is_none());
        let b = body(&ApiError::NoLiveSession);
        assert_eq!(b["error"], "not_found");
        assert_eq!(b["message"], "this user has no live session");
        // Neither is a 401: a client does not refresh on them.
        assert!(!ApiError::OpenidMismatch
            .extra_headers()
            .iter()
            .any(|(n, _)| *n == "WWW-Authenticate"));
    }

    #[test]
    fn decrypt_failed_tells_the_developer_what_to_do() {
        let m = ApiError::DecryptFailed.message();
        assert!(m.contains("log in again"), "{m}");
        assert!(m.contains("wx.login"), "{m}");
    }

    #[test]
    fn wechat_errcodes_map_to_the_contract() {
        let cases = [
            (40029, ApiError::InvalidCode { errcode: 40029 }),
            (40163, ApiError::InvalidCode { errcode: 40163 }),
            (40226, ApiError::UserBlocked { errcode: 40226 }),
            (
                45011,
                ApiError::RateLimited {
                    errcode: Some(45011),
                },
            ),
            (
                40125,
                ApiError::ServerMisconfigured {
                    variable: "WX_APPSECRET",
                    problem: "was refused by WeChat (errcode 40125)",
                },
            ),
            (-1, ApiError::WechatUnavailable { errcode: Some(-1) }),
            (
                99999,
                ApiError::WechatUnavailable {
                    errcode: Some(99999),
                },
            ),
        ];
        for (code, want) in cases {
            assert_eq!(ApiError::from(CallError::Errcode(code)), want, "{code}");
        }
        for e in [
            CallError::Transport(TransportError::Timeout),
            CallError::Transport(TransportError::Network),
            CallError::Unparseable,
            CallError::Http(404),
        ] {
            assert_eq!(
                ApiError::from(e),
                ApiError::WechatUnavailable { errcode: None }
            );
        }
        // The token fetch fails the same way, or as storage.
        assert_eq!(
            ApiError::from(WxTokenError::Call(CallError::Errcode(45011))),
            ApiError::RateLimited {
                errcode: Some(45011)
            }
        );
        assert_eq!(
            ApiError::from(WxTokenError::Store(StoreError)),
            ApiError::StoreUnavailable
        );
    }

    #[test]
    fn open_data_errors_say_which_field() {
        let message = |e: OpenDataError| ApiError::from(e).message();
        assert!(message(OpenDataError::DecryptFailed).contains("log in again"));
        assert!(message(OpenDataError::BadIv).contains("iv"));
        assert!(message(OpenDataError::BadCiphertext).contains("encryptedData"));
    }

    #[test]
    fn a_log_line_gets_the_code_status_and_errcode() {
        let e = ApiError::RateLimited {
            errcode: Some(45011),
        };
        assert_eq!(
            Failure::from(&e),
            Failure {
                code: "rate_limited",
                status: 429,
                wechat_errcode: Some(45011),
            }
        );
    }

    /// One error of every variant: the `match` fails to compile when a
    /// variant is added, so the list below must grow with it.
    fn every_variant() -> Vec<ApiError> {
        let all = vec![
            ApiError::InvalidRequest("x"),
            ApiError::InvalidCode { errcode: 40029 },
            ApiError::InvalidPhoneCode { errcode: 40029 },
            ApiError::DecryptFailed,
            ApiError::WatermarkMismatch,
            ApiError::OpenidMismatch,
            ApiError::NoLiveSession,
            ApiError::Unauthorized,
            ApiError::InvalidToken,
            ApiError::TokenExpired,
            ApiError::SessionRevoked,
            ApiError::InvalidRefreshToken,
            ApiError::RefreshReused,
            ApiError::UserBlocked { errcode: 40226 },
            ApiError::PhoneRequired,
            ApiError::NotInternalUser,
            ApiError::RelayRefused,
            ApiError::NotFound,
            ApiError::MethodNotAllowed,
            ApiError::PayloadTooLarge,
            ApiError::RateLimited { errcode: None },
            ApiError::ServerMisconfigured {
                variable: "X",
                problem: "y",
            },
            ApiError::WechatUnavailable { errcode: None },
            ApiError::OriginUnavailable,
            ApiError::StoreUnavailable,
            ApiError::Internal,
        ];
        for e in &all {
            match e {
                ApiError::InvalidRequest(_)
                | ApiError::InvalidCode { .. }
                | ApiError::InvalidPhoneCode { .. }
                | ApiError::DecryptFailed
                | ApiError::WatermarkMismatch
                | ApiError::OpenidMismatch
                | ApiError::NoLiveSession
                | ApiError::Unauthorized
                | ApiError::InvalidToken
                | ApiError::TokenExpired
                | ApiError::SessionRevoked
                | ApiError::InvalidRefreshToken
                | ApiError::RefreshReused
                | ApiError::UserBlocked { .. }
                | ApiError::PhoneRequired
                | ApiError::NotInternalUser
                | ApiError::RelayRefused
                | ApiError::NotFound
                | ApiError::MethodNotAllowed
                | ApiError::PayloadTooLarge
                | ApiError::RateLimited { .. }
                | ApiError::ServerMisconfigured { .. }
                | ApiError::WechatUnavailable { .. }
                | ApiError::OriginUnavailable
                | ApiError::StoreUnavailable
                | ApiError::Internal => {}
            }
        }
        all
    }

    /// The codes of `AuthErrorCode` in `client/index.d.ts` under the
    /// comment `heading`, up to the next comment or the open-ended
    /// `(string & {})`.
    fn dts_codes(heading: &str) -> std::collections::BTreeSet<String> {
        let dts = include_str!("../client/index.d.ts");
        let union = dts
            .split("export type AuthErrorCode =")
            .nth(1)
            .and_then(|rest| rest.split("(string & {})").next())
            .expect("index.d.ts declares AuthErrorCode");
        let section = union
            .split(heading)
            .nth(1)
            .expect("AuthErrorCode has the section")
            .split("//")
            .next()
            .unwrap_or_default();
        section
            .split('|')
            .map(|c| c.trim().trim_matches('\'').to_string())
            .filter(|c| !c.is_empty())
            .collect()
    }

    #[test]
    fn the_client_types_list_exactly_the_workers_codes() {
        let worker: std::collections::BTreeSet<String> = every_variant()
            .iter()
            .map(|e| e.code().to_string())
            .collect();
        let workers_section = dts_codes("// the worker's");
        let clients_section = dts_codes("// the client's own");
        assert!(workers_section.len() > 10, "{workers_section:?}");
        // `invalid_request` is listed once, with the client's own codes:
        // the client raises it too.
        let shared: std::collections::BTreeSet<String> =
            clients_section.intersection(&worker).cloned().collect();
        assert_eq!(shared, ["invalid_request".to_string()].into());
        let listed: std::collections::BTreeSet<String> =
            workers_section.union(&shared).cloned().collect();
        assert_eq!(listed, worker);
    }
}
