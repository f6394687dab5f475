//! Randomness, passed into the core so tests can pin it.

/// A source of cryptographically secure random bytes.
pub(crate) trait Random {
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RandomError;

/// The platform CSPRNG: `crypto.getRandomValues` in workerd, the OS on the host.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct OsRandom;

impl Random for OsRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomError> {
        getrandom::fill(buf).map_err(|_| RandomError)
    }
}

/// Lower-case hex of `bytes` (request ids, `jti`, log hashes).
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// `N` random bytes.
pub(crate) fn bytes<const N: usize>(rng: &impl Random) -> Result<[u8; N], RandomError> {
    let mut b = [0u8; N];
    rng.fill(&mut b)?;
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_random_differs_between_calls() {
        let a: [u8; 16] = bytes(&OsRandom).expect("csprng");
        let b: [u8; 16] = bytes(&OsRandom).expect("csprng");
        assert_ne!(a, b);
    }
}
