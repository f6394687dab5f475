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

use crate::ids::{OpenId, SessionId, UnionId};
use crate::phone::Phone;
use crate::secret::SessionKey;
use crate::store::StoreError;
use crate::wechat::open_data::{EncryptedPhone, OpenDataError};

pub(crate) mod machine;
pub(crate) mod server;

pub(crate) use machine::{Handout, Outcome, Refusal, Replica, SessionView};

/// What a worker asks of a user's authority.
///
/// On the wire it is serde's default, externally tagged form
/// (`{"login":{…}}`, `"info"`): an internally tagged enum (or a flattened
/// one) is read through serde's buffering `Content` type, which cost the
/// wasm about 40 KB and every call a second pass over its fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Op {
    Login {
        sid: SessionId,
        session_key: SessionKey,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unionid: Option<UnionId>,
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
        phone: Phone,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The worker and its authorities are deployed together but not
    /// restarted at the same instant: the wire's shape is pinned here, so a
    /// change to it is a decision, not an accident.
    #[test]
    fn the_wire_is_externally_tagged() {
        let sid = SessionId::parse("AAAAAAAAAAAAAAAAAAAAAA").expect("a session id");
        let wire = |op: Op| {
            serde_json::to_value(Envelope {
                openid: OpenId::new("o1"),
                op,
            })
            .expect("serializes")
        };
        assert_eq!(
            wire(Op::Info),
            serde_json::json!({"openid": "o1", "op": "info"})
        );
        assert_eq!(
            wire(Op::Logout { sid: sid.clone() }),
            serde_json::json!({"openid": "o1", "op": {"logout": {"sid": sid.as_str()}}})
        );
        let key = SessionKey::from_base64("tiihtNczf5v6AKRyjwEUhQ==").expect("16 bytes");
        let login = wire(Op::Login {
            sid: sid.clone(),
            session_key: key,
            unionid: None,
            refresh_hash: "h".into(),
            ip: None,
        });
        assert_eq!(
            login,
            serde_json::json!({"openid": "o1", "op": {"login": {
                "sid": sid.as_str(),
                "session_key": "tiihtNczf5v6AKRyjwEUhQ==",
                "refresh_hash": "h",
            }}})
        );
        let back: Envelope = serde_json::from_value(login).expect("parses");
        assert!(matches!(
            back.op,
            Op::Login {
                unionid: None,
                ip: None,
                ..
            }
        ));
    }

    /// The internally tagged form used before (`{"openid":…,"op":"logout",
    /// "sid":…}`, never released) is refused, not misread: an authority
    /// answers it 400 and the worker 503, retryable.
    #[test]
    fn the_old_internally_tagged_form_is_refused() {
        let old = r#"{"openid":"o1","op":"logout","sid":"AAAAAAAAAAAAAAAAAAAAAA"}"#;
        assert!(serde_json::from_str::<Envelope>(old).is_err());
        let old_info = r#"{"openid":"o1","op":"info","sid":"x"}"#;
        // `info` carries nothing, and an unknown field is ignored: the
        // one old request that still parses means the same thing.
        let info: Envelope = serde_json::from_str(old_info).expect("parses");
        assert!(matches!(info.op, Op::Info));
    }
}
