//! The tokens the worker issues: access tokens (for the client), refresh
//! tokens (for the client, rotated) and identity assertions (for the
//! origin).

pub(crate) mod access;
pub(crate) mod assertion_cache;
pub(crate) mod identity;
pub(crate) mod refresh;

/// Making a token failed: the runtime's crypto refused, or a bug (an
/// impossible time, unserializable claims). Kept apart from the reasons a
/// presented token is refused (`access::AccessError`), the way
/// jwt-compact separates creation from parse and validation errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SigningError;

/// The `iss` of every token the worker signs.
pub(crate) const ISSUER: &str = "wx-edge";
