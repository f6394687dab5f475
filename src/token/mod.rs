//! The tokens the worker issues: access tokens (for the client), refresh
//! tokens (for the client, rotated) and identity assertions (for the
//! origin).

use chrono::{DateTime, Utc};

pub(crate) mod access;
pub(crate) mod assertion_cache;
pub(crate) mod identity;
pub(crate) mod refresh;

/// The `iss` of every token the worker signs.
pub(crate) const ISSUER: &str = "wx-edge";

/// Unix seconds as the JWT library's instant.
pub(crate) fn instant(unix: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(unix, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}
