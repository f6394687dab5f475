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
//! [`PREVIOUS_WIRE_VERSIONS`] — checked here for each (none yet: version 2
//! is the first released wire, so that part of the test has nothing to
//! read until version 3 moves 2 into the list).

use std::path::PathBuf;

use super::protocol::{
    read_envelope, reply_in, BindDenied, BindEncrypted, BindPhone, Bound, CheckSession, Envelope,
    Login, Logout, Operation, ReadUser, Refresh, RefreshDenied, Refreshed, Request, RevokeAll,
    SessionEnded, SessionView, Unread, UserSummary, Version, NEWER_WIRE_STATUS,
    PREVIOUS_WIRE_VERSIONS, WIRE_VERSION,
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

/// The current version's files are exactly what the code writes, byte
/// for byte, and nothing else: a change to the wire cannot pass
/// unnoticed. `UPDATE_FIXTURES=1` rewrites them (a new version's, never a
/// released one's).
#[test]
fn the_current_wire_is_recorded_byte_for_byte() {
    let mut messages = current();
    messages.sort();
    let dir = dir(WIRE_VERSION);
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        // Written in place, then what is no longer a message removed: the
        // other tests, reading the files meanwhile, never find them gone.
        std::fs::create_dir_all(&dir).expect("creates the directory");
        for (name, text) in &messages {
            std::fs::write(dir.join(name), file_text(text)).expect("writes");
        }
        for (name, _) in recorded(WIRE_VERSION) {
            if !messages.iter().any(|(n, _)| *n == name) {
                std::fs::remove_file(dir.join(name)).expect("removes");
            }
        }
    }
    let expected: Vec<(String, String)> = messages
        .iter()
        .map(|(name, text)| (name.clone(), file_text(text)))
        .collect();
    let names = |v: &[(String, String)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    let found = recorded(WIRE_VERSION);
    assert_eq!(
        names(&found),
        names(&expected),
        "the recorded messages of v{WIRE_VERSION} (UPDATE_FIXTURES=1 cargo test rewrites them)"
    );
    for ((name, want), (_, got)) in expected.iter().zip(&found) {
        assert_eq!(
            got, want,
            "{name} (UPDATE_FIXTURES=1 cargo test rewrites it)"
        );
    }
}

/// `body` answered by a fresh in-memory authority.
fn answer(body: &str) -> Answered {
    let cfg = test_config();
    let server = Server {
        state: &MemoryState::default(),
        kv: &MemoryStore::default(),
        timer: &YieldTimer,
        cfg: &cfg,
        serial: &Serial::default(),
        pacing: &Pacing::default(),
    };
    pollster::block_on(server.answer(body, 1_764_000_000))
}

/// A reply the worker reads for the operation named `name` (the file's
/// `reply-{operation}…`), as the worker's client reads it.
fn worker_reads(name: &str, body: &str) -> Result<(), CallFailure> {
    let answered = Answered {
        status: 200,
        body: body.trim_end().to_string(),
    };
    let op = name
        .strip_prefix("reply-")
        .and_then(|n| n.strip_suffix(".json"))
        .and_then(|n| n.split('-').next())
        .expect("reply-{operation}….json");
    fn read<O: Operation>(a: &Answered) -> Result<(), CallFailure> {
        read_reply::<O::Reply>(a).map(|_| ())
    }
    match op {
        "login" => read::<Login>(&answered),
        "refresh" => read::<Refresh>(&answered),
        "logout" => read::<Logout>(&answered),
        "revoke_all" => read::<RevokeAll>(&answered),
        "bind_phone" => read::<BindPhone>(&answered),
        "bind_encrypted" => read::<BindEncrypted>(&answered),
        "check_session" => read::<CheckSession>(&answered),
        "read_user" => read::<ReadUser>(&answered),
        other => panic!("{name}: no operation {other}"),
    }
}

/// Every recorded message of the current and the previous versions is
/// read: each request by an authority (parsed, applied: 200), each reply
/// by the worker; and a request of a previous version is answered in its
/// own version, so the worker that sent it reads the reply. Until
/// version 3 exists [`PREVIOUS_WIRE_VERSIONS`] is empty and only the
/// current version's files are read.
#[test]
fn every_recorded_message_of_the_current_and_previous_versions_is_read() {
    let versions: Vec<u32> = std::iter::once(WIRE_VERSION)
        .chain(PREVIOUS_WIRE_VERSIONS.iter().copied())
        .collect();
    for v in versions {
        let files = recorded(v);
        let requests = files.iter().filter(|(n, _)| n.starts_with("request-"));
        let replies = files.iter().filter(|(n, _)| n.starts_with("reply-"));
        if v == WIRE_VERSION {
            assert_eq!(requests.clone().count(), 8, "one request per operation");
        }
        for (name, text) in requests {
            let envelope = read_envelope(text.trim_end())
                .unwrap_or_else(|e| panic!("v{v} {name}: not read: {e:?}"));
            assert_eq!(envelope.v.number(), v, "v{v} {name}");
            let answered = answer(text.trim_end());
            assert_eq!(answered.status, 200, "v{v} {name}: {answered:?}");
            let reply_name = name.replacen("request-", "reply-", 1);
            assert_eq!(
                worker_reads(&reply_name, &answered.body),
                Ok(()),
                "v{v} {name}: its answer {}",
                answered.body
            );
        }
        for (name, text) in replies {
            assert_eq!(worker_reads(name, text), Ok(()), "v{v} {name}");
        }
    }
}

/// A request of a version newer than this code (here 99, made from each
/// recorded request) is refused with [`NEWER_WIRE_STATUS`], and the worker
/// reports that as [`CallFailure::AuthorityOlder`] (answered `503
/// store_unavailable`, retryable); one of a version this code no longer
/// reads, or with no version, stays a 400. Neither is applied.
#[test]
fn a_future_version_is_refused_as_documented_on_both_sides() {
    let current = format!(r#"{{"v":{WIRE_VERSION},"#);
    for (name, text) in recorded(WIRE_VERSION) {
        if !name.starts_with("request-") {
            continue;
        }
        assert!(text.starts_with(&current), "{name}");
        let future = text.trim_end().replacen(&current, r#"{"v":99,"#, 1);
        assert_eq!(
            read_envelope(&future).err(),
            Some(Unread::Newer(99)),
            "{name}"
        );
        let answered = answer(&future);
        assert_eq!(answered.status, NEWER_WIRE_STATUS, "{name}");
        assert_eq!(
            read_reply::<serde_json::Value>(&answered),
            Err(CallFailure::AuthorityOlder),
            "{name}"
        );
        for old in [r#"{"v":1,"#, "{"] {
            let old = text.trim_end().replacen(&current, old, 1);
            assert_eq!(read_envelope(&old).err(), Some(Unread::Malformed), "{old}");
            assert_eq!(answer(&old).status, 400, "{old}");
        }
    }
    // A future version whose request this code could not read anyway (a
    // new operation) is refused the same way, not as malformed.
    let unknown = r#"{"v":3,"openid":"o1","request":"rename_user","deadline_ms":1}"#;
    assert_eq!(answer(unknown).status, NEWER_WIRE_STATUS);
}

/// What a reply the worker cannot read becomes: the same retryable
/// failure (`503 store_unavailable`), never a misread.
#[test]
fn a_reply_the_worker_cannot_read_is_a_failure() {
    let answered = Answered {
        status: 200,
        body: r#"{"Ok":{"renamed":{}}}"#.into(),
    };
    assert_eq!(
        read_reply::<<Refresh as Operation>::Reply>(&answered).err(),
        Some(CallFailure::Unreadable)
    );
}
