//! The session authority: one per user (a Durable Object named by the
//! openid in the worker), which makes every change to that user's record
//! and sessions, one at a time.
//!
//! - `machine` — the pure state machine: state, change, time → new state,
//!   reply, effects on the KV replica.
//! - `server` — one authority's request handling around it: load, gather
//!   what the change needs (allowlist, decryption), apply, save, replicate.
//! - this file — the wire between a worker and an authority ([`Op`] in,
//!   [`Answer`] out) and the [`AuthorityClient`] the flows call.

use serde::{Deserialize, Serialize};

use crate::ids::{OpenId, SessionId};
use crate::secret::SessionKey;
use crate::store::StoreError;
use crate::wechat::open_data::{EncryptedPhone, OpenDataError, VerifiedPhone};

pub(crate) mod machine;
pub(crate) mod server;

pub(crate) use machine::{Handout, Outcome, Refusal, Replica, SessionView};

/// What a worker asks of a user's authority.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Op {
    Login {
        sid: SessionId,
        session_key: SessionKey,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unionid: Option<String>,
        refresh_hash: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ip: Option<String>,
    },
    Refresh {
        sid: SessionId,
        presented_hash: String,
        next_hash: String,
        next_sealed: String,
    },
    Logout {
        sid: SessionId,
    },
    RevokeAll,
    /// A phone from getuserphonenumber (already verified by the worker).
    BindPhone {
        sid: SessionId,
        phone: VerifiedPhone,
        next_hash: String,
    },
    /// Legacy `encryptedData`/`iv`: decrypted by the authority with the
    /// session's key, which never leaves it.
    BindEncrypted {
        sid: SessionId,
        encrypted: EncryptedPhone,
        next_hash: String,
    },
    Check {
        sid: SessionId,
    },
    Info,
}

/// An authority's request: whose, and what.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Envelope {
    pub(crate) openid: OpenId,
    #[serde(flatten)]
    pub(crate) op: Op,
}

/// Why an authority said no.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Denial {
    Refused(Refusal),
    /// Legacy phone data that did not open.
    OpenData(OpenDataError),
}

/// An authority's answer.
pub(crate) type Answer = Result<Outcome, Denial>;

/// How the flows reach a user's authority. The worker's is a Durable
/// Object stub; the tests' runs the same server in memory.
#[allow(async_fn_in_trait)] // used with concrete types only; no Send bound wanted on wasm
pub(crate) trait AuthorityClient {
    /// Sends `op` to `openid`'s authority. `Err` when it could not be
    /// reached or failed (the change may or may not have been made).
    async fn call(&self, openid: &OpenId, op: Op) -> Result<Answer, StoreError>;
}
