//! The wire's version mark: which version a request is written in, how an
//! authority reads the mark, and in which version it answers.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{is_accepted, Envelope, Request, OLDEST_WRITTEN, WIRE_VERSION};

/// The wire's version mark: the version a request came in, one this
/// code accepts ([`is_accepted`]); a new envelope carries its request's
/// [`Request::written_in`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Version(u32);

impl Version {
    /// The newest version this code reads and writes.
    pub(crate) const CURRENT: Version = Version(WIRE_VERSION);

    pub(crate) fn number(self) -> u32 {
        self.0
    }
}

impl Default for Version {
    fn default() -> Self {
        Version::CURRENT
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.0)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u32::deserialize(d)?;
        if is_accepted(v) {
            Ok(Version(v))
        } else {
            Err(serde::de::Error::custom("another version of the wire"))
        }
    }
}

impl Request {
    /// The version this request is written in: the oldest one that
    /// carries its operation ([`Request::since`]), and never one older
    /// than [`OLDEST_WRITTEN`]. So an authority of the previous release
    /// reads every operation it knows, and answers only the ones it does
    /// not with [`NEWER_WIRE_STATUS`](super::NEWER_WIRE_STATUS).
    pub(crate) fn written_in(&self) -> Version {
        Version(self.since().max(OLDEST_WRITTEN))
    }
}

/// Why an authority did not read a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unread {
    /// A wire version newer than this code: the authority is older than
    /// the worker (a deploy under way). Answered
    /// [`NEWER_WIRE_STATUS`](super::NEWER_WIRE_STATUS).
    Newer(u32),
    /// Not a request of any version this code reads (400).
    Malformed,
}

/// Only the version mark of an envelope, read when the whole is not.
#[derive(Deserialize)]
struct Head {
    v: u32,
}

/// A request as this code reads it ([`read_envelope_upto`] its newest
/// version).
#[cfg(test)]
pub(crate) fn read_envelope(body: &str) -> Result<Envelope, Unread> {
    read_envelope_upto(WIRE_VERSION, body)
}

/// A request as it came over the wire, read by the code of a release
/// whose newest version is `newest` (this one's, [`WIRE_VERSION`], or an
/// older release's, as the tests run the previous release's authority);
/// when it cannot be read, whether it is of a version after `newest`
/// ([`Unread::Newer`]). The mark is looked at again only then, so a
/// request that reads costs one pass.
pub(crate) fn read_envelope_upto(newest: u32, body: &str) -> Result<Envelope, Unread> {
    let envelope: Envelope =
        serde_json::from_str(body).map_err(|_| match serde_json::from_str::<Head>(body) {
            Ok(Head { v }) if v > newest => Unread::Newer(v),
            _ => Unread::Malformed,
        })?;
    let v = envelope.v.number();
    if v > newest {
        return Err(Unread::Newer(v));
    }
    if envelope.request.since() > v {
        return Err(Unread::Malformed);
    }
    Ok(envelope)
}

/// A reply as JSON, written in `version`, the version its request came
/// in. Every accepted version writes its replies the same way today
/// (version 3 only added operations; version 2's replies are unchanged,
/// proven by its recorded fixtures); a version whose replies differ gets
/// its writer here.
pub(crate) fn reply_in(version: Version, reply: &impl Serialize) -> serde_json::Result<String> {
    debug_assert!(is_accepted(version.number()));
    serde_json::to_string(reply)
}
