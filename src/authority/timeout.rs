//! Time for an authority: its clock, its sleeps, and the timeout on every
//! KV call it makes while serving.
//!
//! A KV call that never answers would otherwise hold the user's turn
//! (`queue`) for as long as the runtime lets it, and every request behind
//! it would wait out its worker's deadline. Each KV call an authority
//! makes (the allowlist read, the replica writes) is raced against the
//! [`Timer`]: [`KV_TIMEOUT_MS`] without an answer is a [`StoreError`], as
//! a KV failure is.

pub(crate) use crate::time::{first, with_timeout, Either, Timed, Timer, KV_TIMEOUT_MS};

/// The longest one call to the authority's own storage may take: 2 s.
/// Durable Object storage answers in well under a millisecond when it is
/// well; one that does not answer would otherwise hold the user's turn for
/// as long as the object lives, and every request behind it would wait out
/// its worker's deadline. A save that times out may still land later: the
/// worker has answered 503 ("try again; a change already saved is
/// finished"), and the next request loads whatever was saved.
pub(crate) const STORAGE_TIMEOUT_MS: u32 = 2_000;

#[cfg(test)]
mod tests;
