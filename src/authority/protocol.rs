//! The wire between a worker and a user's authority: one request type per
//! operation, each with its own reply type (as oauth2-rs has one request
//! type per grant), so a caller can only be handed the kind of answer its
//! request has.
//!
//! The vocabulary, from the wire to the state machine:
//! - an *operation* is one of the request types below ([`Login`],
//!   [`Refresh`], …); [`Operation::Reply`] is what it is answered;
//! - a [`Request`] is any one of them, as the worker sends it inside an
//!   [`Envelope`] (wire version [`WIRE_VERSION`]);
//! - a refusal is the `Err` of a reply: [`RefreshDenied`], [`BindDenied`],
//!   [`SessionEnded`], and for the session-key operations (`keys`)
//!   [`NoLiveSession`] and [`OpenDenied`];
//! - the state machine applies the same types (`machine::Step`), and
//!   answers with the same replies plus its effects on the KV replica.
//!
//! On the wire a request is serde's default, externally tagged form
//! (`{"login":{…}}`, `"read_user"`): an internally tagged enum (or a
//! flattened one) is read through serde's buffering `Content` type, which
//! cost the wasm about 40 KB and every call a second pass over its fields.
//! A reply is its type's own JSON (a `Result` as `{"Ok":…}`/`{"Err":…}`).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::machine::UserRecord;
use crate::ids::{OpenId, SessionId, UnionId};
use crate::phone::Phone;
use crate::secret::{RefreshHash, SessionKey};
use crate::wechat::open_data::{EncryptedPhone, OpenDataError};

/// The wire's version, carried in every [`Envelope`] as `"v"`: the one
/// this code writes. Version 1 (never labelled) had one `Outcome`
/// answering every operation; version 2 is the first released one.
///
/// A worker and an authority one release apart talk to each other (a
/// gradual deploy runs both releases side by side, and assigns each
/// Durable Object one of them): an authority reads a request of
/// [`WIRE_VERSION`] or of one of [`PREVIOUS_WIRE_VERSIONS`] and answers
/// in the version the request came in ([`reply_in`]). A request of a
/// version newer than this code ([`read_envelope`]'s [`Unread::Newer`])
/// is answered [`NEWER_WIRE_STATUS`], which the worker reports as
/// [`CallFailure::AuthorityOlder`](super::CallFailure::AuthorityOlder) and
/// answers `503 store_unavailable`, retryable: the authority is older
/// than this worker, which clears when the deploy finishes. Anything else
/// it cannot read (version 1, no version) is a 400. Never a misread.
///
/// Changing the wire: (1) record the current messages
/// (`tests/fixtures/authority-wire/v{N}/`, kept, never regenerated
/// afterwards); (2) bump [`WIRE_VERSION`], move the old number into
/// [`PREVIOUS_WIRE_VERSIONS`], keep its readers (a `v{N}` request type
/// converting into the current one) and its writers ([`reply_in`]); (3)
/// `UPDATE_FIXTURES=1 cargo test` records the new version. The fixtures
/// test then proves the previous version's messages are still read and
/// written byte for byte. A version leaves [`PREVIOUS_WIRE_VERSIONS`] no
/// sooner than one release later.
///
/// Version 3 added the session-key operations ([`SignLatest`],
/// [`ReplaceKey`], [`OpenData`]); every request and reply of version 2
/// is unchanged, so version 2 is read by the same types (minus the new
/// operations, which it never carried: [`Request::since`]) and answered
/// the same way.
pub(crate) const WIRE_VERSION: u32 = 3;

/// The versions before [`WIRE_VERSION`] still read and answered: 2, the
/// first released wire (version 1 never shipped beside a version mark).
pub(crate) const PREVIOUS_WIRE_VERSIONS: &[u32] = &[2];

/// The status an authority answers a request of a newer wire version
/// than its own with (501: it does not implement that version yet). The
/// worker answers `503 store_unavailable`.
pub(crate) const NEWER_WIRE_STATUS: u16 = 501;

/// Whether this code reads and answers wire version `v`.
pub(crate) fn is_accepted(v: u32) -> bool {
    v == WIRE_VERSION || PREVIOUS_WIRE_VERSIONS.contains(&v)
}

/// A request type and the reply it is answered with.
pub(crate) trait Operation: Into<Request> {
    type Reply: Serialize + DeserializeOwned;
}

/// A login: a new session holding WeChat's session_key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Login {
    pub(crate) sid: SessionId,
    pub(crate) session_key: SessionKey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) unionid: Option<UnionId>,
    pub(crate) refresh_hash: RefreshHash,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ip: Option<String>,
}

/// A refresh: rotate, hand out the same pair again, or detect reuse.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Refresh {
    pub(crate) sid: SessionId,
    pub(crate) presented_hash: RefreshHash,
    pub(crate) next_hash: RefreshHash,
    /// The next token sealed under the presented one (for the grace).
    pub(crate) next_sealed: String,
}

/// Logout: revoke one session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Logout {
    pub(crate) sid: SessionId,
}

/// An operator's revoke: every session of the user.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RevokeAll;

/// A phone WeChat vouched for (getuserphonenumber, checked by the worker),
/// to bind to the user record and the session. The refresh token is not
/// rotated: a double tap, a lost answer or a bind racing a refresh never
/// leaves a client holding a token that was rotated away.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BindPhone {
    pub(crate) sid: SessionId,
    pub(crate) phone: Phone,
}

/// Legacy `encryptedData`/`iv`: opened by the authority with the session's
/// key, which never leaves it, then bound as [`BindPhone`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BindEncrypted {
    pub(crate) sid: SessionId,
    pub(crate) encrypted: EncryptedPhone,
}

impl BindEncrypted {
    /// The binding of the phone this opened to.
    pub(crate) fn opened(self, phone: Phone) -> BindPhone {
        BindPhone {
            sid: self.sid,
            phone,
        }
    }
}

/// Is this session live? (`SESSION_CHECK=authority`, `/auth/session`.)
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CheckSession {
    pub(crate) sid: SessionId,
}

/// The operator's view of the user.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadUser;

/// Any one operation, as sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Request {
    Login(Login),
    Refresh(Refresh),
    Logout(Logout),
    RevokeAll,
    BindPhone(BindPhone),
    BindEncrypted(BindEncrypted),
    CheckSession(CheckSession),
    ReadUser,
    SignLatest(SignLatest),
    ReplaceKey(ReplaceKey),
    OpenData(OpenData),
}

/// What a session looks like from outside: no key, no hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SessionView {
    pub(crate) openid: OpenId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) unionid: Option<UnionId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) phone: Option<Phone>,
    pub(crate) created_at: i64,
    pub(crate) expires_at: i64,
    /// When the current pair was issued: access tokens are issued at this
    /// instant, so a pair handed out twice is the same pair.
    pub(crate) issued_at: i64,
}

/// A refresh the authority honoured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Refreshed {
    /// Rotated: the caller's own new token is now current.
    Rotated(SessionView),
    /// The previous token again, within the grace: the pair already
    /// issued, its refresh token sealed under the one presented (only the
    /// caller can open it).
    Repeated {
        session: SessionView,
        sealed: String,
    },
}

/// Why a refresh was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RefreshDenied {
    /// Unknown, expired, revoked, or a token the rules do not honour.
    InvalidRefreshToken,
    /// A rotated token came back: the session is now revoked.
    RefreshReused,
}

/// A phone bound: the session (its pair unchanged), and the phone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Bound {
    pub(crate) phone: Phone,
    pub(crate) session: SessionView,
}

/// Why a phone was not bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum BindDenied {
    /// The session is gone (logged out, revoked, expired).
    SessionRevoked,
    /// The phone is not on the staff allowlist.
    NotInternalUser,
    /// Legacy phone data that did not open.
    OpenData(OpenDataError),
}

/// The session is gone (logged out, revoked, expired) or never was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SessionEnded;

/// The operator's view of a user: the record and the live sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct UserSummary {
    pub(crate) user: Option<UserRecord>,
    pub(crate) live_sessions: usize,
}

/// `$op` is answered with `$reply`, and is sent as `Request::$op`.
macro_rules! operation {
    ($op:ident => $reply:ty) => {
        impl Operation for $op {
            type Reply = $reply;
        }
        impl From<$op> for Request {
            fn from(op: $op) -> Self {
                Request::$op(op)
            }
        }
    };
    ($op:ident => $reply:ty, carrying nothing) => {
        impl Operation for $op {
            type Reply = $reply;
        }
        impl From<$op> for Request {
            fn from(_: $op) -> Self {
                Request::$op
            }
        }
    };
}

operation!(Login => SessionView);
operation!(Refresh => Result<Refreshed, RefreshDenied>);
operation!(Logout => ());
// How many sessions were live (or expired, not yet forgotten) and are now
// revoked.
operation!(RevokeAll => usize, carrying nothing);
operation!(BindPhone => Result<Bound, BindDenied>);
operation!(BindEncrypted => Result<Bound, BindDenied>);
operation!(CheckSession => Result<SessionView, SessionEnded>);
operation!(ReadUser => UserSummary, carrying nothing);

mod keys;
pub(crate) use keys::{NoLiveSession, OpenData, OpenDenied, ReplaceKey, SignLatest, Signed};

/// The wire's version mark: the version a request came in, one this
/// code accepts ([`is_accepted`]); a new envelope carries
/// [`WIRE_VERSION`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Version(u32);

impl Version {
    /// The version this code writes.
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

/// Why an authority did not read a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unread {
    /// A wire version newer than this code: the authority is older than
    /// the worker (a deploy under way). Answered [`NEWER_WIRE_STATUS`].
    Newer(u32),
    /// Not a request of any version this code reads (400).
    Malformed,
}

/// Only the version mark of an envelope, read when the whole is not.
#[derive(Deserialize)]
struct Head {
    v: u32,
}

/// A request as it came over the wire; when it cannot be read, whether
/// it is of a newer version. The mark is looked at again only then, so a
/// request that reads costs one pass.
pub(crate) fn read_envelope(body: &str) -> Result<Envelope, Unread> {
    let envelope: Envelope =
        serde_json::from_str(body).map_err(|_| match serde_json::from_str::<Head>(body) {
            Ok(Head { v }) if v > WIRE_VERSION => Unread::Newer(v),
            _ => Unread::Malformed,
        })?;
    if envelope.request.since() > envelope.v.number() {
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

/// A request to a user's authority: which wire, whose, what, and by
/// when.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Envelope {
    pub(crate) v: Version,
    pub(crate) openid: OpenId,
    pub(crate) request: Request,
    /// When the worker stops waiting for the answer, in ms since the
    /// epoch: a request whose turn comes later is not applied
    /// (`authority::queue`). Absent (a worker from before the deadline),
    /// the request has none.
    #[serde(default = "no_deadline")]
    pub(crate) deadline_ms: i64,
}

fn no_deadline() -> i64 {
    i64::MAX
}

impl Envelope {
    pub(crate) fn new(openid: OpenId, request: impl Into<Request>, deadline_ms: i64) -> Self {
        Envelope {
            v: Version::CURRENT,
            openid,
            request: request.into(),
            deadline_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sid() -> SessionId {
        SessionId::parse("AAAAAAAAAAAAAAAAAAAAAA").expect("a session id")
    }

    /// The deadline every pinned request carries.
    const BY: i64 = 1_764_000_005_000;

    fn wire(request: impl Into<Request>) -> serde_json::Value {
        serde_json::to_value(Envelope::new(OpenId::new("o1"), request, BY)).expect("serializes")
    }

    /// The worker and its authorities are deployed together but not
    /// restarted at the same instant: the wire's shape is pinned here, so a
    /// change to it is a decision (and a new [`WIRE_VERSION`]), not an
    /// accident.
    #[test]
    fn the_requests_are_pinned() {
        let sid = sid();
        let s = sid.as_str();
        let h = || RefreshHash::new("h");
        // In the bytes, the deadline comes last.
        assert_eq!(
            serde_json::to_string(&Envelope::new(OpenId::new("o1"), ReadUser, BY))
                .expect("serializes"),
            r#"{"v":3,"openid":"o1","request":"read_user","deadline_ms":1764000005000}"#
        );
        assert_eq!(
            wire(ReadUser),
            json!({"v": 3, "openid": "o1", "deadline_ms": BY, "request": "read_user"})
        );
        assert_eq!(
            wire(RevokeAll),
            json!({"v": 3, "openid": "o1", "deadline_ms": BY, "request": "revoke_all"})
        );
        assert_eq!(
            wire(Logout { sid: sid.clone() }),
            json!({"v": 3, "openid": "o1", "deadline_ms": BY, "request": {"logout": {"sid": s}}})
        );
        assert_eq!(
            wire(CheckSession { sid: sid.clone() }),
            json!({"v": 3, "openid": "o1", "deadline_ms": BY, "request": {"check_session": {"sid": s}}})
        );
        let key = SessionKey::from_base64("tiihtNczf5v6AKRyjwEUhQ==").expect("16 bytes");
        let login = wire(Login {
            sid: sid.clone(),
            session_key: key,
            unionid: None,
            refresh_hash: h(),
            ip: None,
        });
        assert_eq!(
            login,
            json!({"v": 3, "openid": "o1", "deadline_ms": BY, "request": {"login": {
                "sid": s, "session_key": "tiihtNczf5v6AKRyjwEUhQ==", "refresh_hash": "h",
            }}})
        );
        let back: Envelope = serde_json::from_value(login).expect("parses");
        assert!(matches!(
            back.request,
            Request::Login(Login {
                unionid: None,
                ip: None,
                ..
            })
        ));
        assert_eq!(
            wire(Refresh {
                sid: sid.clone(),
                presented_hash: h(),
                next_hash: RefreshHash::new("n"),
                next_sealed: "x".into(),
            }),
            json!({"v": 3, "openid": "o1", "deadline_ms": BY, "request": {"refresh": {
                "sid": s, "presented_hash": "h", "next_hash": "n", "next_sealed": "x",
            }}})
        );
        let phone = Phone::for_tests("13800138000", "13800138000", "86");
        assert_eq!(
            wire(BindPhone {
                sid: sid.clone(),
                phone,
            }),
            json!({"v": 3, "openid": "o1", "deadline_ms": BY, "request": {"bind_phone": {
                "sid": s,
                "phone": {"phone_number": "13800138000", "pure_phone_number": "13800138000", "country_code": "86"},
            }}})
        );
        assert_eq!(
            wire(BindEncrypted {
                sid: sid.clone(),
                encrypted: EncryptedPhone {
                    encrypted_data: "ZA==".into(),
                    iv: "aQ==".into(),
                },
            }),
            json!({"v": 3, "openid": "o1", "deadline_ms": BY, "request": {"bind_encrypted": {
                "sid": s, "encrypted": {"encryptedData": "ZA==", "iv": "aQ=="},
            }}})
        );
    }

    #[test]
    fn the_replies_are_pinned() {
        let view = SessionView {
            openid: OpenId::new("o1"),
            unionid: None,
            phone: None,
            created_at: 1,
            expires_at: 3,
            issued_at: 2,
        };
        let v = json!({"openid": "o1", "created_at": 1, "expires_at": 3, "issued_at": 2});
        let rotated: <Refresh as Operation>::Reply = Ok(Refreshed::Rotated(view.clone()));
        assert_eq!(to(&rotated), json!({"Ok": {"rotated": v}}));
        let repeated: <Refresh as Operation>::Reply = Ok(Refreshed::Repeated {
            session: view.clone(),
            sealed: "s".into(),
        });
        assert_eq!(
            to(&repeated),
            json!({"Ok": {"repeated": {"session": v, "sealed": "s"}}})
        );
        let reused: <Refresh as Operation>::Reply = Err(RefreshDenied::RefreshReused);
        assert_eq!(to(&reused), json!({"Err": "refresh_reused"}));
        let ended: <CheckSession as Operation>::Reply = Err(SessionEnded);
        assert_eq!(to(&ended), json!({"Err": null}));
        let live: <CheckSession as Operation>::Reply = Ok(view);
        assert_eq!(to(&live), json!({"Ok": v}));
        let undecryptable: <BindEncrypted as Operation>::Reply =
            Err(BindDenied::OpenData(OpenDataError::DecryptFailed));
        assert_eq!(
            to(&undecryptable),
            json!({"Err": {"open_data": "decrypt_failed"}})
        );
        let unlisted: <BindPhone as Operation>::Reply = Err(BindDenied::NotInternalUser);
        assert_eq!(to(&unlisted), json!({"Err": "not_internal_user"}));
        let logout: <Logout as Operation>::Reply = ();
        assert_eq!(to(&logout), json!(null));
        let revoked: <RevokeAll as Operation>::Reply = 2;
        assert_eq!(to(&revoked), json!(2));
        let summary: <ReadUser as Operation>::Reply = UserSummary {
            user: None,
            live_sessions: 0,
        };
        assert_eq!(to(&summary), json!({"user": null, "live_sessions": 0}));
    }

    fn to(reply: &impl Serialize) -> serde_json::Value {
        serde_json::to_value(reply).expect("serializes")
    }

    /// Another version, or none (the first wire, and the internally tagged
    /// form before it), is refused, not misread: an authority answers an
    /// older one 400 and a newer one 501 (`fixtures` tests both), and the
    /// worker 503, retryable.
    #[test]
    fn other_versions_are_refused() {
        let s = "AAAAAAAAAAAAAAAAAAAAAA";
        for old in [
            format!(r#"{{"openid":"o1","op":{{"logout":{{"sid":"{s}"}}}}}}"#),
            format!(r#"{{"openid":"o1","op":"logout","sid":"{s}"}}"#),
            r#"{"openid":"o1","op":"info"}"#.to_string(),
            format!(r#"{{"v":1,"openid":"o1","request":{{"logout":{{"sid":"{s}"}}}}}}"#),
            format!(r#"{{"v":4,"openid":"o1","request":{{"logout":{{"sid":"{s}"}}}}}}"#),
        ] {
            assert!(serde_json::from_str::<Envelope>(&old).is_err(), "{old}");
        }
        for v in [2, 3] {
            let now =
                format!(r#"{{"v":{v},"openid":"o1","request":{{"logout":{{"sid":"{s}"}}}}}}"#);
            let parsed = read_envelope(&now).expect("parses");
            assert!(matches!(parsed.request, Request::Logout(_)));
            assert_eq!(parsed.v.number(), v);
        }
    }

    /// The session-key operations are version 3's: a version 2 request
    /// naming one is not a request of version 2 (400), whatever else it
    /// carries.
    #[test]
    fn version_2_never_carried_the_session_key_operations() {
        let s = "AAAAAAAAAAAAAAAAAAAAAA";
        for request in [
            r#"{"sign_latest":{"data":""}}"#.to_string(),
            format!(
                r#"{{"replace_key":{{"sid":"{s}","session_key":"tiihtNczf5v6AKRyjwEUhQ=="}}}}"#
            ),
            r#"{"open_data":{"encrypted":{"encryptedData":"ZA==","iv":"aQ=="}}}"#.to_string(),
        ] {
            let v2 = format!(r#"{{"v":2,"openid":"o1","request":{request}}}"#);
            assert_eq!(read_envelope(&v2).err(), Some(Unread::Malformed), "{v2}");
            let v3 = format!(r#"{{"v":3,"openid":"o1","request":{request}}}"#);
            assert_eq!(read_envelope(&v3).expect("parses").request.since(), 3);
        }
    }

    #[test]
    fn the_session_key_operations_are_pinned() {
        let sid = sid();
        let s = sid.as_str();
        assert_eq!(
            wire(SignLatest { data: "d".into() }),
            json!({"v": 3, "openid": "o1", "deadline_ms": BY, "request": {"sign_latest": {"data": "d"}}})
        );
        let key = SessionKey::from_base64("tiihtNczf5v6AKRyjwEUhQ==").expect("16 bytes");
        assert_eq!(
            wire(ReplaceKey {
                sid: sid.clone(),
                session_key: key,
            }),
            json!({"v": 3, "openid": "o1", "deadline_ms": BY, "request": {"replace_key": {
                "sid": s, "session_key": "tiihtNczf5v6AKRyjwEUhQ==",
            }}})
        );
        assert_eq!(
            wire(OpenData {
                encrypted: EncryptedPhone {
                    encrypted_data: "ZA==".into(),
                    iv: "aQ==".into(),
                },
            }),
            json!({"v": 3, "openid": "o1", "deadline_ms": BY, "request": {"open_data": {
                "encrypted": {"encryptedData": "ZA==", "iv": "aQ=="},
            }}})
        );
        let signed: <SignLatest as Operation>::Reply = Ok(Signed {
            sid: sid.clone(),
            signature: "ab".into(),
        });
        assert_eq!(to(&signed), json!({"Ok": {"sid": s, "signature": "ab"}}));
        assert!(!format!("{signed:?}").contains("ab\""), "{signed:?}");
        let none: <SignLatest as Operation>::Reply = Err(NoLiveSession);
        assert_eq!(to(&none), json!({"Err": null}));
        let replaced: <ReplaceKey as Operation>::Reply = Ok(());
        assert_eq!(to(&replaced), json!({"Ok": null}));
        let opened: <OpenData as Operation>::Reply = Ok("{}".into());
        assert_eq!(to(&opened), json!({"Ok": "{}"}));
        let denied: <OpenData as Operation>::Reply = Err(OpenDenied::NoLiveSession);
        assert_eq!(to(&denied), json!({"Err": "no_live_session"}));
        let failed: <OpenData as Operation>::Reply =
            Err(OpenDenied::OpenData(OpenDataError::DecryptFailed));
        assert_eq!(to(&failed), json!({"Err": {"open_data": "decrypt_failed"}}));
    }

    /// The accepted set is the current version and the previous ones,
    /// older than it; never a newer one, never version 1 (no mark).
    #[test]
    fn the_accepted_versions_are_the_current_and_the_previous() {
        assert!(is_accepted(WIRE_VERSION));
        for &v in PREVIOUS_WIRE_VERSIONS {
            assert!(v < WIRE_VERSION && v > 1 && is_accepted(v), "{v}");
        }
        for v in [0, 1, WIRE_VERSION + 1, 99] {
            assert!(!is_accepted(v), "{v}");
        }
        assert_eq!(Version::default(), Version::CURRENT);
        assert_eq!(Version::CURRENT.number(), WIRE_VERSION);
    }

    /// The deadline is read as sent; an envelope without one (from a
    /// worker deployed before it) has none, and one that is not a number
    /// is refused.
    #[test]
    fn the_deadline_is_read() {
        let s = "AAAAAAAAAAAAAAAAAAAAAA";
        let none = format!(r#"{{"v":2,"openid":"o1","request":{{"logout":{{"sid":"{s}"}}}}}}"#);
        let parsed: Envelope = serde_json::from_str(&none).expect("parses");
        assert_eq!(parsed.deadline_ms, i64::MAX);
        let by = format!(
            r#"{{"v":2,"openid":"o1","request":{{"logout":{{"sid":"{s}"}}}},"deadline_ms":7}}"#
        );
        let parsed: Envelope = serde_json::from_str(&by).expect("parses");
        assert_eq!(parsed.deadline_ms, 7);
        let bad = format!(
            r#"{{"v":2,"openid":"o1","request":{{"logout":{{"sid":"{s}"}}}},"deadline_ms":"soon"}}"#
        );
        assert!(serde_json::from_str::<Envelope>(&bad).is_err());
    }
}
