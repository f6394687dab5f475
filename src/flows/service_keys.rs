//! STUB (relay's branch): the service endpoints' session-key operations.
//! Helper "keys" writes the real module; the merge replaces this file
//! with theirs. Only the items `serve` calls, each answering 404.

// A stub: nothing to await yet.
#![allow(clippy::unused_async)]

use serde::Serialize;
use serde_json::{Map, Value};

use super::{Edge, Platform};
use crate::error::ApiError;
use crate::ids::OpenId;

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

impl<P: Platform> Edge<'_, P> {
    pub(crate) async fn service_check(&self, openid: &OpenId) -> Result<KeyValid, ApiError> {
        let _ = openid;
        Err(ApiError::NotFound)
    }

    pub(crate) async fn service_reset(&self, openid: &OpenId) -> Result<KeyReset, ApiError> {
        let _ = openid;
        Err(ApiError::NotFound)
    }

    pub(crate) async fn service_sign(
        &self,
        openid: &OpenId,
        body: &Map<String, Value>,
    ) -> Result<Signature, ApiError> {
        let _ = (openid, body);
        Err(ApiError::NotFound)
    }

    pub(crate) async fn service_decrypt(
        &self,
        openid: &OpenId,
        body: &Map<String, Value>,
    ) -> Result<Decrypted, ApiError> {
        let _ = (openid, body);
        Err(ApiError::NotFound)
    }
}
