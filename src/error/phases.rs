//! Each phase's own error, mapped onto the contract's table. Every `match`
//! is exhaustive: a new variant must decide its answer here.

use super::ApiError;
use crate::authority::{BindDenied, OpenDenied, RefreshDenied, SessionEnded};
use crate::config::ConfigError;
use crate::ids::BadCode;
use crate::phone::PhoneInfoError;
use crate::random::RandomError;
use crate::store::StoreError;
use crate::token::access::AccessError;
use crate::token::SigningError;
use crate::wechat::access_token::WxTokenError;
use crate::wechat::open_data::OpenDataError;
use crate::wechat::{CallError, TransportError};

/// An error that is one answer, whatever it holds.
macro_rules! one_answer {
    ($($error:ty => $answer:expr;)+) => {$(
        impl From<$error> for ApiError {
            fn from(_: $error) -> Self {
                $answer
            }
        }
    )+};
}

/// An error whose variants carry nothing: each is one answer (the `match`
/// is exhaustive all the same).
macro_rules! answer_by_variant {
    ($($error:ident { $($variant:ident => $answer:expr,)+ })+) => {$(
        impl From<$error> for ApiError {
            fn from(e: $error) -> Self {
                match e {
                    $($error::$variant => $answer,)+
                }
            }
        }
    )+};
}

one_answer! {
    StoreError => ApiError::StoreUnavailable;
    SessionEnded => ApiError::SessionRevoked;
    RandomError => ApiError::Internal;
    SigningError => ApiError::Internal;
}

answer_by_variant! {
    RefreshDenied {
        InvalidRefreshToken => ApiError::InvalidRefreshToken,
        RefreshReused => ApiError::RefreshReused,
    }
    AccessError {
        Invalid => ApiError::InvalidToken,
        Expired => ApiError::TokenExpired,
    }
    BadCode {
        Missing => ApiError::InvalidRequest("code is missing"),
        Malformed => ApiError::InvalidRequest(
            "code is not a WeChat code (printable ASCII, at most 256 characters)",
        ),
    }
    OpenDataError {
        BadCiphertext => ApiError::InvalidRequest("encryptedData must be base64 of whole AES blocks"),
        BadIv => ApiError::InvalidRequest("iv must be the base64 of 16 bytes"),
        DecryptFailed => ApiError::DecryptFailed,
        WatermarkMismatch => ApiError::WatermarkMismatch,
        NotPhone => ApiError::InvalidRequest(
            "the data decrypts but is not a phone number: send what the getPhoneNumber button gave",
        ),
        NoWatermark => ApiError::InvalidRequest(
            "the data decrypts but carries no watermark: send encryptedData and iv as WeChat gave them",
        ),
        Stale => ApiError::InvalidRequest(
            "the phone data is too old (its watermark is older than PHONE_DATA_MAX_AGE): have the user tap the button again and send its data at once",
        ),
    }
    PhoneInfoError {
        // WeChat's own reply is unusable: not the client's fault.
        Malformed => ApiError::WechatUnavailable { errcode: None },
        WatermarkMismatch => ApiError::WatermarkMismatch,
    }
}

impl From<ConfigError> for ApiError {
    fn from(e: ConfigError) -> Self {
        ApiError::ServerMisconfigured {
            variable: e.variable,
            problem: e.problem,
        }
    }
}

impl From<BindDenied> for ApiError {
    fn from(d: BindDenied) -> Self {
        match d {
            BindDenied::SessionRevoked => ApiError::SessionRevoked,
            BindDenied::NotInternalUser => ApiError::NotInternalUser,
            BindDenied::OpenData(e) => ApiError::from(e),
        }
    }
}

/// Open data for a service: `/auth/phone`'s answers, but about any data
/// (WeRun steps, a share…), and 404 for a user with no live session.
impl From<OpenDenied> for ApiError {
    fn from(d: OpenDenied) -> Self {
        match d {
            OpenDenied::NoLiveSession => ApiError::NoLiveSession,
            OpenDenied::OpenData(OpenDataError::Stale) => ApiError::InvalidRequest(
                "the data is too old (its watermark is older than PHONE_DATA_MAX_AGE): have the mini-program fetch it again and send it at once",
            ),
            OpenDenied::OpenData(e) => ApiError::from(e),
        }
    }
}

/// A failed WeChat call of the login (code2Session) or token
/// (`stable_token`) kind.
impl From<CallError> for ApiError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Errcode(code @ (40029 | 40163)) => ApiError::InvalidCode { errcode: code },
            CallError::Errcode(code @ 40226) => ApiError::UserBlocked { errcode: code },
            CallError::Errcode(code @ 45011) => ApiError::RateLimited {
                errcode: Some(code),
            },
            // WeChat refusing our own credentials is a deployment problem.
            CallError::Errcode(40013) => ApiError::ServerMisconfigured {
                variable: "WX_APPID",
                problem: "was refused by WeChat (errcode 40013)",
            },
            CallError::Errcode(40125) => ApiError::ServerMisconfigured {
                variable: "WX_APPSECRET",
                problem: "was refused by WeChat (errcode 40125)",
            },
            CallError::Errcode(code) => ApiError::WechatUnavailable {
                errcode: Some(code),
            },
            CallError::Http(_)
            | CallError::Unparseable
            | CallError::Transport(TransportError::Network | TransportError::Timeout) => {
                ApiError::WechatUnavailable { errcode: None }
            }
        }
    }
}

impl From<WxTokenError> for ApiError {
    fn from(e: WxTokenError) -> Self {
        match e {
            WxTokenError::Store(e) => ApiError::from(e),
            WxTokenError::Call(e) => ApiError::from(e),
        }
    }
}

/// A failed getuserphonenumber call: its 40029 is about the phone button's
/// code, not about `wx.login`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PhoneCallError(pub(crate) CallError);

impl From<PhoneCallError> for ApiError {
    fn from(PhoneCallError(e): PhoneCallError) -> Self {
        match e {
            CallError::Errcode(code @ (40029 | 40163)) => {
                ApiError::InvalidPhoneCode { errcode: code }
            }
            other => ApiError::from(other),
        }
    }
}
