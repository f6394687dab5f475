//! The wire's recorded messages, kept byte for byte in
//! `tests/fixtures/authority-wire/v{N}/`, one file each: the messages *of*
//! version N, made from the real types.
//!
//! - `request-{operation}.json`: an [`Envelope`] as a worker sends it,
//!   marked `"v":N`;
//! - `reply-{operation}[-{case}].json`: a reply as an authority answers
//!   that request (in the request's version).
//!
//! A request is written in the oldest version that carries its operation
//! (`Request::written_in`): version 2's directory holds the operations
//! of the first released wire, which this code still writes in version 2;
//! version 3's holds only the session-key operations it added.
//!
//! Every `cargo test` checks that every message this code writes is
//! recorded, byte for byte, in its version's directory, and that
//! [`WIRE_VERSION`]'s holds nothing else (`UPDATE_FIXTURES=1 cargo test`
//! rewrites that one, for a deliberate change of the wire, which is a new
//! version; in an older one it only adds a missing file, never changes
//! one). The files of a version are kept when the next one comes: the
//! authority must go on reading every request, and answering every
//! reply, of [`PREVIOUS_WIRE_VERSIONS`] — checked here for each.

use std::path::PathBuf;

use super::protocol::{
    is_accepted, read_envelope, reply_in, BindDenied, BindEncrypted, BindPhone, Bound,
    CheckSession, Envelope, Login, Logout, NoLiveSession, OpenData, OpenDenied, Operation,
    ReadUser, Refresh, RefreshDenied, Refreshed, ReplaceKey, Request, RevokeAll, SessionEnded,
    SessionView, SignLatest, Signed, Unread, UserSummary, Version, NEWER_WIRE_STATUS,
    OLDEST_WRITTEN, PREVIOUS_WIRE_VERSIONS, WIRE_VERSION,
};
use super::server::{Answered, Pacing, Server};
use super::{read_reply, CallFailure};
use crate::authority::machine::UserRecord;
use crate::authority::queue::Serial;
use crate::ids::{OpenId, SessionId, UnionId};
use crate::phone::Phone;
use crate::secret::{RefreshHash, SessionKey};
use crate::testkit::{test_config, MemoryState, MemoryStore, YieldTimer};
use crate::wechat::open_data::{EncryptedPhone, OpenDataError};

/// Where version `v`'s messages are kept.
fn dir(v: u32) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/authority-wire")
        .join(format!("v{v}"))
}

/// The deadline every recorded request carries.
const BY: i64 = 1_764_000_005_000;

fn sid() -> SessionId {
    SessionId::parse("AAAAAAAAAAAAAAAAAAAAAA").expect("a session id")
}

fn phone() -> Phone {
    Phone::for_tests("+8613800138000", "13800138000", "86")
}

/// A message: the wire version it is of, its file's name, its text.
type Message = (u32, String, String);

fn request(name: &str, op: impl Into<Request>) -> Message {
    let envelope = Envelope::new(OpenId::new("o1"), op, BY);
    let text = serde_json::to_string(&envelope).expect("serializes");
    (envelope.v.number(), format!("request-{name}.json"), text)
}

fn reply<O: Operation>(name: &str, reply: O::Reply) -> (String, String) {
    let text = reply_in(Version::CURRENT, &reply).expect("serializes");
    (format!("reply-{name}.json"), text)
}

/// The operation a file's message is of: `request-{operation}.json`,
/// `reply-{operation}[-{case}].json`.
fn operation_of(name: &str) -> &str {
    name.strip_prefix("request-")
        .or_else(|| name.strip_prefix("reply-"))
        .and_then(|n| n.strip_suffix(".json"))
        .and_then(|n| n.split('-').next())
        .unwrap_or_else(|| panic!("{name}: not request-… or reply-….json"))
}

/// Wire version `v`, which this code accepts.
fn version(v: u32) -> Version {
    serde_json::from_str(&v.to_string()).expect("an accepted version")
}

/// Every message this code writes, each in its version: each request
/// with every field it can carry, in the version it is written in; each
/// reply in each of its shapes, in its request's version.
fn written() -> Vec<Message> {
    let mut messages = written_requests();
    let replies: Vec<Message> = current_replies()
        .into_iter()
        .map(|(name, text)| {
            let op = operation_of(&name);
            let Some((v, _, _)) = messages
                .iter()
                .find(|(_, request, _)| operation_of(request) == op)
            else {
                panic!("{name}: no request-{op}.json")
            };
            let v = *v;
            let text = rewritten(version(v), &name, &text);
            (v, name, text)
        })
        .collect();
    messages.extend(replies);
    messages.sort();
    messages
}

/// A reply, read as its operation's reply type and written again in
/// `version`.
fn rewritten(version: Version, name: &str, body: &str) -> String {
    fn again<O: Operation>(version: Version, body: &str) -> String {
        let reply: O::Reply = serde_json::from_str(body).expect("a reply");
        reply_in(version, &reply).expect("serializes")
    }
    match operation_of(name) {
        "login" => again::<Login>(version, body),
        "refresh" => again::<Refresh>(version, body),
        "logout" => again::<Logout>(version, body),
        "revoke_all" => again::<RevokeAll>(version, body),
        "bind_phone" => again::<BindPhone>(version, body),
        "bind_encrypted" => again::<BindEncrypted>(version, body),
        "check_session" => again::<CheckSession>(version, body),
        "read_user" => again::<ReadUser>(version, body),
        "sign_latest" => again::<SignLatest>(version, body),
        "replace_key" => again::<ReplaceKey>(version, body),
        "open_data" => again::<OpenData>(version, body),
        other => panic!("{name}: no operation {other}"),
    }
}

fn written_requests() -> Vec<Message> {
    let h = |s: &str| RefreshHash::new(s);
    let key = SessionKey::from_base64("tiihtNczf5v6AKRyjwEUhQ==").expect("16 bytes");
    vec![
        request(
            "login",
            Login {
                sid: sid(),
                session_key: key,
                unionid: Some(UnionId::new("u1")),
                refresh_hash: h("h1"),
                ip: Some("203.0.113.7".into()),
            },
        ),
        request(
            "refresh",
            Refresh {
                sid: sid(),
                presented_hash: h("h1"),
                next_hash: h("h2"),
                next_sealed: "c2VhbGVk".into(),
            },
        ),
        request("logout", Logout { sid: sid() }),
        request("revoke_all", RevokeAll),
        request(
            "bind_phone",
            BindPhone {
                sid: sid(),
                phone: phone(),
            },
        ),
        request(
            "bind_encrypted",
            BindEncrypted {
                sid: sid(),
                encrypted: EncryptedPhone {
                    encrypted_data: "ZA==".into(),
                    iv: "aQ==".into(),
                },
            },
        ),
        request("check_session", CheckSession { sid: sid() }),
        request("read_user", ReadUser),
        request(
            "sign_latest",
            SignLatest {
                data: r#"{"offerId":"1"}"#.into(),
            },
        ),
        request(
            "replace_key",
            ReplaceKey {
                sid: sid(),
                session_key: SessionKey::from_base64("o0q0otL8aEzpcZL/FT9WsQ==").expect("16 bytes"),
            },
        ),
        request(
            "open_data",
            OpenData {
                encrypted: EncryptedPhone {
                    encrypted_data: "ZA==".into(),
                    iv: "aQ==".into(),
                },
            },
        ),
    ]
}

fn current_replies() -> Vec<(String, String)> {
    let view = SessionView {
        openid: OpenId::new("o1"),
        unionid: Some(UnionId::new("u1")),
        phone: Some(phone()),
        created_at: 1_764_000_000,
        expires_at: 1_766_592_000,
        issued_at: 1_764_000_100,
    };
    let bare = SessionView {
        unionid: None,
        phone: None,
        ..view.clone()
    };
    let user = UserRecord {
        openid: OpenId::new("o1"),
        unionid: Some(UnionId::new("u1")),
        first_login_at: 1_764_000_000,
        last_login_at: 1_764_000_100,
        last_login_ip: Some("203.0.113.7".into()),
        login_count: 2,
        phone: Some(phone()),
        phone_bound_at: Some(1_764_000_050),
    };
    vec![
        reply::<Login>("login", view.clone()),
        reply::<Refresh>("refresh-rotated", Ok(Refreshed::Rotated(bare.clone()))),
        reply::<Refresh>(
            "refresh-repeated",
            Ok(Refreshed::Repeated {
                session: bare.clone(),
                sealed: "c2VhbGVk".into(),
            }),
        ),
        reply::<Refresh>(
            "refresh-invalid_refresh_token",
            Err(RefreshDenied::InvalidRefreshToken),
        ),
        reply::<Refresh>("refresh-refresh_reused", Err(RefreshDenied::RefreshReused)),
        reply::<Logout>("logout", ()),
        reply::<RevokeAll>("revoke_all", 2),
        reply::<BindPhone>(
            "bind_phone-bound",
            Ok(Bound {
                phone: phone(),
                session: view.clone(),
            }),
        ),
        reply::<BindPhone>(
            "bind_phone-session_revoked",
            Err(BindDenied::SessionRevoked),
        ),
        reply::<BindPhone>(
            "bind_phone-not_internal_user",
            Err(BindDenied::NotInternalUser),
        ),
        reply::<BindEncrypted>(
            "bind_encrypted-open_data",
            Err(BindDenied::OpenData(OpenDataError::DecryptFailed)),
        ),
        reply::<CheckSession>("check_session-live", Ok(view)),
        reply::<CheckSession>("check_session-ended", Err(SessionEnded)),
        reply::<ReadUser>(
            "read_user",
            UserSummary {
                user: Some(user),
                live_sessions: 1,
            },
        ),
        reply::<ReadUser>(
            "read_user-none",
            UserSummary {
                user: None,
                live_sessions: 0,
            },
        ),
        reply::<SignLatest>(
            "sign_latest-signed",
            Ok(Signed {
                sid: sid(),
                signature: "7154f9f8b4b76b92f541cbf0e37d48840fa06e5e42da92a6f80168a1516a4735"
                    .into(),
            }),
        ),
        reply::<SignLatest>("sign_latest-no_live_session", Err(NoLiveSession)),
        reply::<ReplaceKey>("replace_key-replaced", Ok(())),
        reply::<ReplaceKey>("replace_key-ended", Err(SessionEnded)),
        reply::<OpenData>(
            "open_data-opened",
            Ok(r#"{"openGId":"g","watermark":{"timestamp":1764000000,"appid":"wx1"}}"#.into()),
        ),
        reply::<OpenData>("open_data-no_live_session", Err(OpenDenied::NoLiveSession)),
        reply::<OpenData>(
            "open_data-open_data",
            Err(OpenDenied::OpenData(OpenDataError::DecryptFailed)),
        ),
    ]
}

/// A file's text: the message's bytes and a newline.
fn file_text(message: &str) -> String {
    format!("{message}\n")
}

/// The recorded messages of version `v`, by file name, sorted (none
/// when nothing is recorded in it).
fn recorded(v: u32) -> Vec<(String, String)> {
    let dir = dir(v);
    if !dir.exists() {
        return Vec::new();
    }
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a directory entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("a file name")
                .to_string();
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (name, text)
        })
        .collect();
    files.sort();
    files
}

// The tests over the recorded files.
#[cfg(test)]
mod tests;
