//! The session-key operations of wire version 3: a signature with the
//! newest live session's key, a key replaced (WeChat's reset, the
//! mini-program's re-key), and open data opened with the live sessions'
//! keys. The key never leaves the authority: these answer with a
//! signature or a plaintext, never with a key.

use serde::{Deserialize, Serialize};

use super::{Operation, Request, SessionEnded};
use crate::ids::SessionId;
use crate::secret::SessionKey;
use crate::wechat::open_data::{EncryptedData, OpenDataError};

/// WeChat's login-state signature of `data` (hex HMAC-SHA256 keyed with
/// the session_key's text) with the key of the user's newest live
/// session: the one whose key was set most recently.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SignLatest {
    pub(crate) data: String,
}

/// A signature, and the session whose key made it (the one a reset
/// replaces the key of).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Signed {
    pub(crate) sid: SessionId,
    pub(crate) signature: String,
}

/// The signature of `""` is what WeChat's session-key APIs take: it
/// never prints.
impl std::fmt::Debug for Signed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signed")
            .field("sid", &self.sid)
            .field("signature", &"[redacted]")
            .finish()
    }
}

/// The user has no live session (or no record at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NoLiveSession;

/// The session's key is now `session_key` (WeChat's
/// `resetusersessionkey`, or code2Session for a re-key): the session's
/// `key_at` becomes now, so it is the newest; its failed decryptions stay
/// counted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ReplaceKey {
    pub(crate) sid: SessionId,
    pub(crate) session_key: SessionKey,
}

/// Open data (`encryptedData`/`iv`) opened with the keys of the user's
/// live sessions, newest first: the plaintext JSON object, as text,
/// watermark included. The rules of the legacy phone apply: this app's
/// watermark, no older than `PHONE_DATA_MAX_AGE`; data that opens with no
/// key, or is stale, counts one failed decryption against the newest live
/// session (the fifth revokes it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OpenData {
    pub(crate) encrypted: EncryptedData,
}

/// Why open data was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum OpenDenied {
    /// No live session: no key to try.
    NoLiveSession,
    /// What the data's opening answered: `decrypt_failed` when no key
    /// opened it (which key was tried, and why each failed, is not told).
    OpenData(OpenDataError),
}

impl Request {
    /// The first wire version that carries this operation: a request of
    /// an older version naming it is not a request of that version.
    pub(crate) fn since(&self) -> u32 {
        match self {
            Request::SignLatest(_) | Request::ReplaceKey(_) | Request::OpenData(_) => 3,
            Request::Login(_)
            | Request::Refresh(_)
            | Request::Logout(_)
            | Request::RevokeAll
            | Request::BindPhone(_)
            | Request::BindEncrypted(_)
            | Request::CheckSession(_)
            | Request::ReadUser => 2,
        }
    }
}

operation!(SignLatest => Result<Signed, NoLiveSession>);
operation!(ReplaceKey => Result<(), SessionEnded>);
operation!(OpenData => Result<String, OpenDenied>);
