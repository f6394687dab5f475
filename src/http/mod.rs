//! The HTTP surface in pure functions: which handler a request goes to,
//! what its body says, which paths are public, and the headers the origin
//! receives.

pub(crate) mod body;
pub(crate) mod cors;
pub(crate) mod headers;
pub(crate) mod path;
pub(crate) mod response;
pub(crate) mod router;
