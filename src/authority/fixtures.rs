//! The wire's recorded messages: every request and reply of
//! [`WIRE_VERSION`], made from the real types and kept byte for byte in
//! `tests/fixtures/authority-wire/v{N}/`, one file each.
//!
//! - `request-{operation}.json`: an [`Envelope`] as a worker sends it;
//! - `reply-{operation}[-{case}].json`: a reply as an authority answers it.
//!
//! Every `cargo test` checks the current version's files against what the
//! code writes now (`UPDATE_FIXTURES=1 cargo test` rewrites them, for a
//! deliberate change of the wire, which is a new version). The files of a
//! version are kept when the next one comes: the authority must go on
//! reading every request, and answering every reply, of
//! [`PREVIOUS_WIRE_VERSIONS`] — checked here for each (version 2, the
//! first released wire, since version 3 added the session-key
//! operations).

use std::path::PathBuf;

use super::protocol::{
    read_envelope, reply_in, BindDenied, BindEncrypted, BindPhone, Bound, CheckSession, Envelope,
    Login, Logout, NoLiveSession, OpenData, OpenDenied, Operation, ReadUser, Refresh,
    RefreshDenied, Refreshed, ReplaceKey, Request, RevokeAll, SessionEnded, SessionView,
    SignLatest, Signed, Unread, UserSummary, Version, NEWER_WIRE_STATUS, PREVIOUS_WIRE_VERSIONS,
    WIRE_VERSION,
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

fn request(name: &str, op: impl Into<Request>) -> (String, String) {
    let envelope = Envelope::new(OpenId::new("o1"), op, BY);
    let text = serde_json::to_string(&envelope).expect("serializes");
    (format!("request-{name}.json"), text)
}

fn reply<O: Operation>(name: &str, reply: O::Reply) -> (String, String) {
    let text = reply_in(Version::CURRENT, &reply).expect("serializes");
    (format!("reply-{name}.json"), text)
}

/// Every message of the current version, as the code writes it now: each
/// request with every field it can carry, each reply in each of its
/// shapes.
fn current() -> Vec<(String, String)> {
    let mut messages = current_requests();
    messages.extend(current_replies());
    messages
}

fn current_requests() -> Vec<(String, String)> {
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

/// The recorded messages of version `v`, by file name, sorted.
fn recorded(v: u32) -> Vec<(String, String)> {
    let dir = dir(v);
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
