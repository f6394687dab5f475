//! STUB (relay's branch): `POST /auth/session/rekey`. Helper "keys" writes
//! the real module; the merge replaces this file with theirs.

// A stub: nothing to await yet.
#![allow(clippy::unused_async)]

use serde_json::{Map, Value};

use super::{Edge, Platform};
use crate::error::ApiError;

impl<P: Platform> Edge<'_, P> {
    pub(crate) async fn rekey(
        &self,
        authorization: Option<&str>,
        client_ip: Option<&str>,
        body: &Map<String, Value>,
    ) -> Result<(), ApiError> {
        let _ = (authorization, client_ip, body);
        Err(ApiError::NotFound)
    }
}
