//! Each phase's own error, mapped onto the contract's table. Every `match`
//! is exhaustive: a new variant must decide its answer here.

use super::ApiError;
use crate::authority::{BindDenied, RefreshDenied, SessionEnded};
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

impl From<ConfigError> for ApiError {
    fn from(e: ConfigError) -> Self {
        ApiError::ServerMisconfigured {
            variable: e.variable,
            problem: e.problem,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(_: StoreError) -> Self {
        ApiError::StoreUnavailable
    }
}

impl From<RefreshDenied> for ApiError {
    fn from(r: RefreshDenied) -> Self {
        match r {
            RefreshDenied::InvalidRefreshToken => ApiError::InvalidRefreshToken,
            RefreshDenied::RefreshReused => ApiError::RefreshReused,
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

impl From<SessionEnded> for ApiError {
    fn from(_: SessionEnded) -> Self {
        ApiError::SessionRevoked
    }
}

impl From<RandomError> for ApiError {
    fn from(_: RandomError) -> Self {
        ApiError::Internal
    }
}

impl From<BadCode> for ApiError {
    fn from(e: BadCode) -> Self {
        match e {
            BadCode::Missing => ApiError::InvalidRequest("code is missing"),
            BadCode::Malformed => ApiError::InvalidRequest(
                "code is not a WeChat code (printable ASCII, at most 256 characters)",
            ),
        }
    }
}

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::Invalid => ApiError::InvalidToken,
            AccessError::Expired => ApiError::TokenExpired,
        }
    }
}

impl From<SigningError> for ApiError {
    fn from(_: SigningError) -> Self {
        ApiError::Internal
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

impl From<OpenDataError> for ApiError {
    fn from(e: OpenDataError) -> Self {
        match e {
            OpenDataError::BadCiphertext => {
                ApiError::InvalidRequest("encryptedData must be base64 of whole AES blocks")
            }
            OpenDataError::BadIv => ApiError::InvalidRequest("iv must be the base64 of 16 bytes"),
            OpenDataError::DecryptFailed => ApiError::DecryptFailed,
            OpenDataError::WatermarkMismatch => ApiError::WatermarkMismatch,
            OpenDataError::NotPhone => ApiError::InvalidRequest(
                "the data decrypts but is not a phone number: send what the getPhoneNumber button gave",
            ),
        }
    }
}

impl From<PhoneInfoError> for ApiError {
    fn from(e: PhoneInfoError) -> Self {
        match e {
            // WeChat's own reply is unusable: not the client's fault.
            PhoneInfoError::Malformed => ApiError::WechatUnavailable { errcode: None },
            PhoneInfoError::WatermarkMismatch => ApiError::WatermarkMismatch,
        }
    }
}
