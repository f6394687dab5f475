//! Operator logs: one JSON line per auth event and per error, which Workers
//! Logs indexes field by field ("how many logins failed with 40029 in the
//! last hour?").
//!
//! A line names the user only by a keyed hash of the openid (HMAC-SHA-256
//! under a key derived from `TOKEN_SECRET`, truncated): stable, so one
//! user's events can be followed, but not reversible without the secret.
//! Never an openid, a token, a session_key, a phone number or a body.

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::ids::OpenId;
use crate::limits::{Limit, OnFailure};

/// The key of the user hash: derived from `TOKEN_SECRET` at start.
#[derive(Clone)]
pub(crate) struct LogSalt([u8; 32]);

impl std::fmt::Debug for LogSalt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogSalt([redacted])")
    }
}

impl LogSalt {
    pub(crate) fn derive(token_secret: &str) -> Self {
        use sha2::Digest;
        let mut h = Sha256::new();
        h.update(b"wx-edge/log-salt/v1\0");
        h.update(token_secret.as_bytes());
        LogSalt(h.finalize().into())
    }

    /// The user as logs name them: 16 hex digits.
    pub(crate) fn user(&self, openid: &OpenId) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) else {
            return String::new();
        };
        mac.update(openid.as_str().as_bytes());
        crate::random::hex(&mac.finalize().into_bytes()[..8])
    }
}

/// How a request failed, as the log records it: plain facts, so the log
/// knows nothing of the error table that produced them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Failure {
    /// The contract's error code (`rate_limited`, `invalid_code`…).
    pub(crate) code: &'static str,
    pub(crate) status: u16,
    /// WeChat's errcode, when WeChat caused the failure.
    pub(crate) wechat_errcode: Option<i64>,
}

/// One event: what was asked, how it ended, for whom, how long it took.
#[derive(Debug, Serialize)]
pub(crate) struct LogLine<'a> {
    /// `login`, `refresh`, `logout`, `session`, `phone`, `rekey`,
    /// `revoke`, `admin_user`, `service_check`, `service_reset`,
    /// `service_sign`, `service_decrypt`, `service_relay`, `jwks`,
    /// `proxy`, `not_found`…
    pub(crate) event: &'a str,
    /// `ok` or `error`.
    pub(crate) outcome: &'static str,
    /// The contract's error code (`rate_limited`, `invalid_code`…), on error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) wechat_errcode: Option<i64>,
    pub(crate) duration_ms: u64,
    pub(crate) request_id: &'a str,
    /// The keyed hash of the openid, when the request named a user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) user: Option<String>,
}

/// The event of a refused operator call (no or a wrong `ADMIN_TOKEN`):
/// its own, so that guessing shows up apart from operators' mistakes of
/// another kind.
pub(crate) const OPERATOR_REFUSED: &str = "operator_refused";

/// The event a request is logged as: the route's, except that an operator
/// endpoint refusing the bearer token is [`OPERATOR_REFUSED`].
fn event_of(event: &str, result: Result<(), Failure>) -> &str {
    let operator = matches!(event, "admin_user" | "revoke");
    match result {
        Err(f) if operator && matches!(f.code, "unauthorized" | "invalid_token") => {
            OPERATOR_REFUSED
        }
        _ => event,
    }
}

/// The line logged each time a rate limiter fails (its binding throws):
/// which binding, what the request met (`closed`: 503, `open`: let
/// through), and how many times that limiter has failed in this isolate.
pub(crate) fn limiter_failed(limit: Limit, failures: u64) -> String {
    #[derive(Serialize)]
    struct Line {
        event: &'static str,
        outcome: &'static str,
        binding: &'static str,
        on_failure: &'static str,
        failures: u64,
    }
    let line = Line {
        event: "limiter_failed",
        outcome: "error",
        binding: limit.binding(),
        on_failure: match limit.on_failure() {
            OnFailure::Closed => "closed",
            OnFailure::Open => "open",
        },
        failures,
    };
    serde_json::to_string(&line)
        .unwrap_or_else(|_| r#"{"event":"limiter_failed","outcome":"error"}"#.to_string())
}

impl<'a> LogLine<'a> {
    /// The line for `event`, ended as `result`.
    pub(crate) fn new(
        event: &'a str,
        result: Result<(), Failure>,
        user: Option<&OpenId>,
        salt: &LogSalt,
        duration_ms: u64,
        request_id: &'a str,
    ) -> Self {
        let (outcome, code, status, wechat_errcode) = match result {
            Ok(()) => ("ok", None, None, None),
            Err(f) => ("error", Some(f.code), Some(f.status), f.wechat_errcode),
        };
        LogLine {
            event: event_of(event, result),
            outcome,
            code,
            status,
            wechat_errcode,
            duration_ms,
            request_id,
            user: user.map(|u| salt.user(u)),
        }
    }

    /// The JSON line.
    pub(crate) fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"event":"log","outcome":"error","code":"unserializable"}"#.to_string()
        })
    }
}

/// Whether an event is worth a line: every auth event, and the proxy's and
/// others' errors (a proxied request that went well is not logged: it is
/// the hot path, and the origin logs it).
pub(crate) fn worth_logging(event: &str, ok: bool) -> bool {
    !ok || !matches!(event, "proxy" | "jwks")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_json_with_the_fields_and_no_secret() {
        let salt = LogSalt::derive("test-only-token-secret-0123456789abcdefghijklmnop");
        let openid = OpenId::new("oGZUI0egBJY1zhBYw2KhdUfwVJJE");
        let e = Failure {
            code: "invalid_code",
            status: 400,
            wechat_errcode: Some(40029),
        };
        let line = LogLine::new("login", Err(e), Some(&openid), &salt, 12, "req-1").to_json();
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(v["event"], "login");
        assert_eq!(v["outcome"], "error");
        assert_eq!(v["code"], "invalid_code");
        assert_eq!(v["status"], 400);
        assert_eq!(v["wechat_errcode"], 40029);
        assert_eq!(v["duration_ms"], 12);
        assert_eq!(v["request_id"], "req-1");
        let user = v["user"].as_str().expect("user hash");
        assert_eq!(user.len(), 16);
        assert!(!line.contains(openid.as_str()));
        // Stable per user and secret; another secret, another hash.
        assert_eq!(salt.user(&openid), user);
        let other = LogSalt::derive("another-token-secret-0123456789abcdefghijklmno");
        assert_ne!(other.user(&openid), user);
        assert_ne!(salt.user(&OpenId::new("oOther")), user);

        let ok = LogLine::new("refresh", Ok(()), None, &salt, 3, "r").to_json();
        assert_eq!(
            ok,
            r#"{"event":"refresh","outcome":"ok","duration_ms":3,"request_id":"r"}"#
        );
        assert!(!format!("{salt:?}").contains(&format!("{:?}", salt.0)));
    }

    #[test]
    fn a_refused_operator_call_is_its_own_event() {
        let salt = LogSalt::derive("test-only-token-secret-0123456789abcdefghijklmnop");
        let fail = |code, status| Failure {
            code,
            status,
            wechat_errcode: None,
        };
        let event = |event, result| {
            let line = LogLine::new(event, result, None, &salt, 1, "r").to_json();
            serde_json::from_str::<serde_json::Value>(&line).expect("JSON")["event"].clone()
        };
        for route in ["admin_user", "revoke"] {
            assert_eq!(
                event(route, Err(fail("unauthorized", 401))),
                OPERATOR_REFUSED
            );
            assert_eq!(
                event(route, Err(fail("invalid_token", 401))),
                OPERATOR_REFUSED
            );
            assert_eq!(event(route, Err(fail("not_found", 404))), route);
            assert_eq!(event(route, Err(fail("rate_limited", 429))), route);
            assert_eq!(event(route, Ok(())), route);
        }
        // Another route's 401 is that route's.
        assert_eq!(event("session", Err(fail("invalid_token", 401))), "session");
    }

    #[test]
    fn a_failing_limiter_is_logged_with_its_binding_policy_and_count() {
        let v: serde_json::Value =
            serde_json::from_str(&limiter_failed(Limit::Code2Session, 3)).expect("JSON");
        assert_eq!(v["event"], "limiter_failed");
        assert_eq!(v["outcome"], "error");
        assert_eq!(v["binding"], "WX_LOGIN_LIMITER");
        assert_eq!(v["on_failure"], "closed");
        assert_eq!(v["failures"], 3);
        let v: serde_json::Value =
            serde_json::from_str(&limiter_failed(Limit::Refresh, 1)).expect("JSON");
        assert_eq!(v["on_failure"], "open");
    }

    #[test]
    fn successful_proxying_is_not_logged_errors_are() {
        assert!(!worth_logging("proxy", true));
        assert!(worth_logging("proxy", false));
        assert!(worth_logging("login", true));
        assert!(worth_logging("logout", false));
        // Every service call is a line, ok or not (the relay too: it is the
        // origin's, not the hot path).
        for event in [
            "rekey",
            "service_check",
            "service_reset",
            "service_sign",
            "service_decrypt",
            "service_relay",
        ] {
            assert!(worth_logging(event, true) && worth_logging(event, false));
        }
    }
}
