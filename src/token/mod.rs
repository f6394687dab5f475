//! The tokens the worker issues: access tokens (for the client), refresh
//! tokens (for the client, rotated) and identity assertions (for the
//! origin).

pub(crate) mod access;
pub(crate) mod assertion_cache;
pub(crate) mod identity;
pub(crate) mod refresh;

/// The `iss` of every token the worker signs.
pub(crate) const ISSUER: &str = "wx-edge";
