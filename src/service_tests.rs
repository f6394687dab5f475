//! Behaviour tests of the login flows over an in-memory KV, a scripted
//! WeChat and the OS random source. Time is whatever each test says: an
//! [`Edge`] is built per "request" with its own `now`, and the store's clock
//! follows it (see [`World::at`]).

use super::*;
use crate::store::RETIRED_KEPT;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use pollster::block_on;
use serde_json::{json, Value};

use crate::config::tests::test_config;
use crate::random::{OsRandom, RandomError};
use crate::store::tests::MemoryStore;
use crate::wechat::tests::{ok, Scripted, YieldOnce, GOOD};
use crate::wechat::Method;

const NOW: i64 = 1_764_000_000;
const APPID: &str = "wxd930ea5d5a258f4f";
const APP_SECRET: &str = "appsecret-value-123";
/// The session_key of [`GOOD`].
const GOOD_KEY: &str = "tiihtNczf5v6AKRyjwEUhQ==";
const IP: &str = "203.0.113.7";
const API: &str = "https://api.weixin.qq.com";

const STABLE_T1: &str = r#"{"access_token":"T1","expires_in":7200}"#;
const STABLE_T2: &str = r#"{"access_token":"T2","expires_in":7200}"#;
const PHONE_REPLY: &str = r#"{"errcode":0,"errmsg":"ok","phone_info":{"phoneNumber":"13800138000","purePhoneNumber":"13800138000","countryCode":"86","watermark":{"timestamp":1764000000,"appid":"wxd930ea5d5a258f4f"}}}"#;
const PHONE_REPLY_FOREIGN: &str = r#"{"errcode":0,"errmsg":"ok","phone_info":{"phoneNumber":"13800138000","purePhoneNumber":"13800138000","countryCode":"86","watermark":{"timestamp":1764000000,"appid":"wx0000000000000000"}}}"#;
const PURE: &str = "13800138000";

type TestEdge<'a> = Edge<'a, MemoryStore, Scripted, OsRandom>;

/// One deployment: configuration, KV, WeChat and randomness.
struct World {
    cfg: Config,
    store: MemoryStore,
    wx: Scripted,
    rng: OsRandom,
    /// One isolate's shared state: every request of a test runs in it.
    isolate: IsolateState,
}

impl World {
    fn new() -> Self {
        Self::with(test_config())
    }

    fn with(cfg: Config) -> Self {
        World {
            cfg,
            store: MemoryStore::default(),
            wx: Scripted::default(),
            rng: OsRandom,
            isolate: IsolateState::default(),
        }
    }

    /// A request handled at `now` (the KV clock is set to it too).
    fn at(&self, now: i64) -> TestEdge<'_> {
        self.store.now.set(now);
        Edge {
            cfg: &self.cfg,
            store: &self.store,
            wechat: &self.wx,
            rng: &self.rng,
            isolate: &self.isolate,
            now,
        }
    }

    fn reply(&self, body: &str) {
        self.wx.push(ok(body));
    }

    fn login_from(&self, now: i64, wechat_reply: &str, ip: Option<&str>) -> TokenResponse {
        self.reply(wechat_reply);
        block_on(self.at(now).login("0a1LoginCode", ip)).expect("login succeeds")
    }

    fn login_at(&self, now: i64, wechat_reply: &str) -> TokenResponse {
        self.login_from(now, wechat_reply, Some(IP))
    }

    fn refresh(&self, now: i64, token: &str) -> Result<TokenResponse, ApiError> {
        block_on(self.at(now).refresh(token))
    }

    fn bind(
        &self,
        now: i64,
        login: &TokenResponse,
        req: PhoneRequest<'_>,
    ) -> Result<TokenResponse, ApiError> {
        block_on(self.at(now).bind_phone(Some(&bearer_of(login)), req))
    }

    fn authenticate_err(&self, now: i64, r: &TokenResponse, load: bool) -> Option<ApiError> {
        block_on(self.at(now).authenticate(Some(&bearer_of(r)), load)).err()
    }

    /// The session record as KV returns it at the store's current time.
    fn session(&self, sid: &str) -> Option<SessionRecord> {
        block_on(get_json(&self.store, &session_key(sid))).expect("store readable")
    }

    fn user(&self, openid: &str) -> Option<UserRecord> {
        block_on(get_json(&self.store, &user_key(openid))).expect("store readable")
    }

    /// The raw KV entry (value, absolute expiry), ignoring expiry.
    fn raw_entry(&self, key: &str) -> Option<(String, Option<i64>)> {
        self.store.data.borrow().get(key).cloned()
    }

    fn allow(&self, pure: &str) {
        block_on(self.store.put(&allow_key(pure), "1", None)).expect("put");
    }

    fn sent_len(&self) -> usize {
        self.wx.sent.borrow().len()
    }

    fn sent_url(&self, i: usize) -> String {
        self.wx.sent.borrow()[i].url.clone()
    }

    fn sent_method(&self, i: usize) -> Method {
        self.wx.sent.borrow()[i].method
    }

    fn sent_body(&self, i: usize) -> Value {
        let sent = self.wx.sent.borrow();
        let body = sent[i].body.as_deref().expect("request has a body");
        serde_json::from_str(body).expect("request body is JSON")
    }

    fn claims(&self, access_token: &str, now: i64) -> AccessClaims {
        verify_access(&self.cfg.token_key, &self.cfg.appid, access_token, now)
            .expect("access token verifies")
            .claims
    }
}

fn bearer_of(r: &TokenResponse) -> String {
    format!("Bearer {}", r.access_token)
}

fn sid_of(refresh_token: &str) -> String {
    refresh_token
        .split_once('.')
        .expect("refresh token is sid.secret")
        .0
        .to_string()
}

fn hash_of(refresh_token: &str) -> String {
    ParsedRefresh::parse(refresh_token)
        .expect("refresh token parses")
        .hash()
}

fn jwt_part(token: &str, i: usize) -> Value {
    let part = token.split('.').nth(i).expect("JWT part");
    serde_json::from_slice(&B64URL.decode(part).expect("base64url")).expect("JSON")
}

fn vectors() -> Value {
    serde_json::from_str(include_str!("../tests/fixtures/wechat-vectors.json"))
        .expect("fixture is JSON")
}

fn vector(case: &str, name: &str) -> String {
    vectors()[case][name]
        .as_str()
        .unwrap_or_else(|| panic!("{case}.{name} in the fixture"))
        .to_string()
}

fn encrypted(case: &str) -> EncryptedPhone {
    EncryptedPhone {
        encrypted_data: vector(case, "encrypted_data"),
        iv: vector(case, "iv"),
    }
}

/// The session_key of the phone vectors.
fn phone_key() -> String {
    vector("phone_ok", "session_key")
}

/// A code2Session reply handing out the phone vectors' session_key.
fn phone_login_reply() -> String {
    json!({"openid": "oUser1", "session_key": phone_key(), "unionid": "uUnion1"}).to_string()
}

fn errcode(code: i64) -> String {
    format!(r#"{{"errcode":{code},"errmsg":"scripted error"}}"#)
}

fn expected_phone() -> VerifiedPhone {
    VerifiedPhone {
        phone_number: PURE.into(),
        pure_phone_number: PURE.into(),
        country_code: "86".into(),
    }
}

fn public_world() -> World {
    let mut cfg = test_config();
    cfg.public_paths = vec!["/public/".into()];
    World::with(cfg)
}

// ===================================================================== login

#[test]
fn login_returns_a_bearer_pair() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    assert_eq!(r.token_type, "Bearer");
    assert_eq!(r.expires_in, w.cfg.access_ttl);
    assert_eq!(r.expires_in, 600);
    assert_eq!(r.refresh_expires_in, w.cfg.refresh_ttl);
    assert_eq!(r.openid, "oUser1");
    assert_eq!(r.unionid.as_deref(), Some("uUnion1"));
    assert!(!r.phone_bound);
    assert_eq!(r.phone_number, None);
    assert_eq!(r.pure_phone_number, None);
    assert_eq!(r.country_code, None);
    assert_eq!(r.access_token.split('.').count(), 3, "a JWT");
    assert!(ParsedRefresh::parse(&r.refresh_token).is_some());
}

#[test]
fn token_lifetimes_follow_the_configuration() {
    let mut cfg = test_config();
    cfg.access_ttl = 120;
    cfg.refresh_ttl = 3_600;
    let w = World::with(cfg);
    let r = w.login_at(NOW, GOOD);
    assert_eq!(r.expires_in, 120);
    assert_eq!(r.refresh_expires_in, 3_600);
    let v = verify_access(&w.cfg.token_key, APPID, &r.access_token, NOW).expect("valid");
    assert_eq!(v.expires_at, NOW + 120);
    let s = w.session(&sid_of(&r.refresh_token)).expect("session");
    assert_eq!(s.expires_at, NOW + 3_600);
    let r2 = w.refresh(NOW + 100, &r.refresh_token).expect("rotates");
    assert_eq!(r2.expires_in, 120);
    assert_eq!(r2.refresh_expires_in, 3_600);
    assert_eq!(
        w.refresh(NOW + 100 + 3_600, &r2.refresh_token),
        Err(ApiError::InvalidRefreshToken)
    );
}

#[test]
fn login_stores_the_session_with_the_session_key_and_a_hashed_refresh_token() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let sid = sid_of(&r.refresh_token);
    let s = w.session(&sid).expect("session stored under session:{sid}");
    assert_eq!(s.openid, "oUser1");
    assert_eq!(s.unionid.as_deref(), Some("uUnion1"));
    assert_eq!(s.session_key.secret(), GOOD_KEY);
    assert!(s.phone.is_none());
    assert_eq!(s.created_at, NOW);
    assert_eq!(s.expires_at, NOW + w.cfg.refresh_ttl as i64);
    assert_eq!(s.refresh_hash, hash_of(&r.refresh_token));
    assert_eq!(s.prev_hash, None);
    assert_eq!(s.rotated_at, None);
    assert_eq!(s.sealed_current, None);
    assert!(s.retired.is_empty());

    // KV drops the record when the session ends; the user record stays.
    let (_, exp) = w.raw_entry(&session_key(&sid)).expect("raw entry");
    assert_eq!(exp, Some(NOW + w.cfg.refresh_ttl as i64));
    let (_, user_exp) = w.raw_entry(&user_key("oUser1")).expect("user entry");
    assert_eq!(user_exp, None);

    // KV never holds the refresh token itself.
    let secret_part = r.refresh_token.split_once('.').expect("sid.secret").1;
    assert!(!w.store.raw().contains(secret_part));
}

#[test]
fn login_response_json_has_no_session_key_and_no_app_secret() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let text = serde_json::to_string(&r).expect("serializes");
    assert!(!text.contains(GOOD_KEY), "{text}");
    assert!(!text.contains("session_key"), "{text}");
    assert!(!text.contains(APP_SECRET), "{text}");
    let v: Value = serde_json::from_str(&text).expect("JSON");
    let mut keys: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "access_token",
            "expires_in",
            "openid",
            "phone_bound",
            "refresh_expires_in",
            "refresh_token",
            "token_type",
            "unionid"
        ]
    );
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 600);
    assert_eq!(v["refresh_expires_in"], 2_592_000);
    assert_eq!(v["phone_bound"], false);
}

#[test]
fn login_without_unionid_omits_it() {
    let w = World::new();
    let r = w.login_at(
        NOW,
        &format!(r#"{{"openid":"oNoUnion","session_key":"{GOOD_KEY}"}}"#),
    );
    assert_eq!(r.openid, "oNoUnion");
    assert_eq!(r.unionid, None);
    let v: Value = serde_json::to_value(&r).expect("JSON");
    assert!(v.get("unionid").is_none());
    assert_eq!(w.claims(&r.access_token, NOW).unionid, None);
}

#[test]
fn user_record_keeps_first_login_and_tracks_the_latest() {
    let w = World::new();
    w.login_from(NOW, GOOD, Some(IP));
    let u = w.user("oUser1").expect("user record");
    assert_eq!(
        u,
        UserRecord {
            openid: "oUser1".into(),
            unionid: Some("uUnion1".into()),
            first_login_at: NOW,
            last_login_at: NOW,
            last_login_ip: Some(IP.into()),
            login_count: 1,
            phone: None,
            phone_bound_at: None,
        }
    );

    w.login_from(NOW + 3_600, GOOD, Some("198.51.100.9"));
    let u = w.user("oUser1").expect("user record");
    assert_eq!(u.first_login_at, NOW);
    assert_eq!(u.last_login_at, NOW + 3_600);
    assert_eq!(u.last_login_ip.as_deref(), Some("198.51.100.9"));
    assert_eq!(u.login_count, 2);

    w.login_from(NOW + 7_200, GOOD, Some(IP));
    assert_eq!(w.user("oUser1").expect("user").login_count, 3);
}

#[test]
fn a_second_login_creates_another_session_with_the_new_session_key() {
    let w = World::new();
    let first = w.login_at(NOW, &phone_login_reply());
    let second = w.login_at(NOW + 5, GOOD);
    let (sid1, sid2) = (sid_of(&first.refresh_token), sid_of(&second.refresh_token));
    assert_ne!(sid1, sid2);
    assert_ne!(first.refresh_token, second.refresh_token);
    assert_eq!(
        w.session(&sid1).expect("first").session_key.secret(),
        phone_key()
    );
    let s2 = w.session(&sid2).expect("second");
    assert_eq!(s2.session_key.secret(), GOOD_KEY);
    assert_eq!(s2.created_at, NOW + 5);
    assert_eq!(w.claims(&second.access_token, NOW + 5).sid, sid2);
}

#[test]
fn code2session_errors_propagate_and_store_nothing() {
    let cases = [
        (40029, ApiError::InvalidCode { errcode: 40029 }, 400),
        (40163, ApiError::InvalidCode { errcode: 40163 }, 400),
        (40226, ApiError::UserBlocked { errcode: 40226 }, 403),
    ];
    for (code, want, status) in cases {
        let w = World::new();
        w.reply(&errcode(code));
        let e = block_on(w.at(NOW).login("0a1LoginCode", Some(IP))).expect_err("refused");
        assert_eq!(e, want);
        assert_eq!(e.wechat_errcode(), Some(code));
        assert_eq!(e.status(), status);
        assert!(
            w.store.data.borrow().is_empty(),
            "errcode {code} stored something"
        );
        assert_eq!(w.sent_len(), 1, "errcode {code} must not be retried");
    }
}

#[test]
fn code2session_request_carries_the_code_and_appid() {
    let w = World::new();
    w.reply(GOOD);
    block_on(w.at(NOW).login("0a1Code+/=", None)).expect("login");
    assert_eq!(w.sent_len(), 1);
    assert_eq!(w.sent_method(0), Method::Get);
    let url = w.sent_url(0);
    assert!(
        url.starts_with(&format!("{API}/sns/jscode2session?")),
        "{url}"
    );
    assert!(url.contains("js_code=0a1Code%2B%2F%3D"), "{url}");
    assert!(url.contains(&format!("appid={APPID}")), "{url}");
    assert!(url.contains("grant_type=authorization_code"), "{url}");
}

#[test]
fn a_malformed_login_code_never_reaches_wechat() {
    let w = World::new();
    w.reply(GOOD);
    let e = block_on(w.at(NOW).login("", None)).expect_err("empty code");
    assert!(matches!(e, ApiError::InvalidRequest(_)), "{e:?}");
    assert_eq!(w.sent_len(), 0);
    assert!(w.store.data.borrow().is_empty());
}

#[test]
fn the_access_token_verifies_with_openid_and_session_id() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let v = verify_access(&w.cfg.token_key, APPID, &r.access_token, NOW).expect("valid");
    assert_eq!(v.claims.sub, "oUser1");
    assert_eq!(v.claims.sid, sid_of(&r.refresh_token));
    assert_eq!(v.claims.aud, APPID);
    assert_eq!(v.claims.unionid.as_deref(), Some("uUnion1"));
    assert_eq!(v.claims.phone, None);
    assert_eq!(v.expires_at, NOW + 600);
    assert_eq!(
        verify_access(&w.cfg.token_key, APPID, &r.access_token, NOW + 601),
        Err(ApiError::TokenExpired)
    );
    // The refresh token is not an access token.
    assert_eq!(
        verify_access(&w.cfg.token_key, APPID, &r.refresh_token, NOW),
        Err(ApiError::InvalidToken)
    );
}

// =================================================================== refresh

#[test]
fn refresh_rotates_and_grace_returns_the_same_new_token() {
    let w = World::new();
    let r1 = w.login_at(NOW, GOOD);
    let sid = sid_of(&r1.refresh_token);

    let r2 = w.refresh(NOW + 10, &r1.refresh_token).expect("rotates");
    assert_ne!(r2.refresh_token, r1.refresh_token);
    assert_eq!(sid_of(&r2.refresh_token), sid);
    assert_eq!(r2.token_type, "Bearer");
    assert_eq!(r2.expires_in, 600);
    assert_eq!(r2.refresh_expires_in, w.cfg.refresh_ttl);
    assert_eq!(r2.openid, "oUser1");
    assert_eq!(r2.unionid.as_deref(), Some("uUnion1"));
    assert!(!r2.phone_bound);
    let c = w.claims(&r2.access_token, NOW + 10);
    assert_eq!((c.sub.as_str(), c.sid.as_str()), ("oUser1", sid.as_str()));

    let s = w.session(&sid).expect("session");
    assert_eq!(s.refresh_hash, hash_of(&r2.refresh_token));
    assert_eq!(
        s.prev_hash.as_deref(),
        Some(hash_of(&r1.refresh_token).as_str())
    );
    assert_eq!(s.rotated_at, Some(NOW + 10));

    // A concurrent refresh with the old token, up to REFRESH_GRACE later.
    for dt in [0, 1, REFRESH_GRACE] {
        let again = w.refresh(NOW + 10 + dt, &r1.refresh_token).expect("grace");
        assert_eq!(again.refresh_token, r2.refresh_token, "at +{dt}");
        // The session was not extended again: less of it is left.
        assert_eq!(
            again.refresh_expires_in,
            w.cfg.refresh_ttl - dt as u64,
            "at +{dt}"
        );
        assert_eq!(w.claims(&again.access_token, NOW + 10 + dt).sid, sid);
    }
    // ... which did not rotate again.
    let s = w.session(&sid).expect("session");
    assert_eq!(s.refresh_hash, hash_of(&r2.refresh_token));
    assert_eq!(s.rotated_at, Some(NOW + 10));
}

#[test]
fn the_old_token_after_the_grace_is_reuse_and_revokes_the_session() {
    let w = World::new();
    let r1 = w.login_at(NOW, GOOD);
    let sid = sid_of(&r1.refresh_token);
    let r2 = w.refresh(NOW + 10, &r1.refresh_token).expect("rotates");

    let late = NOW + 10 + REFRESH_GRACE + 1;
    assert_eq!(
        w.refresh(late, &r1.refresh_token),
        Err(ApiError::RefreshReused)
    );
    assert!(w.raw_entry(&session_key(&sid)).is_none(), "session deleted");

    // Everyone is out: the newest refresh token and its access token.
    assert_eq!(
        w.refresh(late, &r2.refresh_token),
        Err(ApiError::InvalidRefreshToken)
    );
    assert_eq!(
        w.authenticate_err(late, &r2, true),
        Some(ApiError::SessionRevoked)
    );
    assert_eq!(
        block_on(w.at(late).session_info(Some(&bearer_of(&r2)))),
        Err(ApiError::SessionRevoked)
    );
}

#[test]
fn a_token_two_rotations_back_is_reuse_even_within_the_grace() {
    let w = World::new();
    let r1 = w.login_at(NOW, GOOD);
    let sid = sid_of(&r1.refresh_token);
    let r2 = w.refresh(NOW + 1, &r1.refresh_token).expect("1st rotation");
    let r3 = w.refresh(NOW + 2, &r2.refresh_token).expect("2nd rotation");
    assert_ne!(r3.refresh_token, r2.refresh_token);
    // The immediately previous one is still in its grace.
    assert_eq!(
        w.refresh(NOW + 3, &r2.refresh_token)
            .expect("grace")
            .refresh_token,
        r3.refresh_token
    );
    assert_eq!(
        w.refresh(NOW + 3, &r1.refresh_token),
        Err(ApiError::RefreshReused)
    );
    assert!(w.session(&sid).is_none());
    assert_eq!(
        w.refresh(NOW + 4, &r3.refresh_token),
        Err(ApiError::InvalidRefreshToken)
    );
}

#[test]
fn unknown_or_malformed_refresh_tokens_are_invalid_and_harmless() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let sid = sid_of(&r.refresh_token);
    let unknown_sid = format!("{}.{}", B64URL.encode([7u8; 16]), B64URL.encode([9u8; 32]));
    let wrong_secret = format!("{sid}.{}", B64URL.encode([9u8; 32]));
    let cases = [
        String::new(),
        "garbage".to_string(),
        "a.b".to_string(),
        format!("{sid}.short"),
        format!("{}.x.y", r.refresh_token),
        r.access_token.clone(),
        unknown_sid,
        wrong_secret,
    ];
    for t in &cases {
        assert_eq!(
            w.refresh(NOW + 1, t),
            Err(ApiError::InvalidRefreshToken),
            "{t}"
        );
    }
    // A wrong secret for a real session neither revokes nor rotates it.
    let s = w.session(&sid).expect("session intact");
    assert_eq!(s.refresh_hash, hash_of(&r.refresh_token));
    assert!(w.refresh(NOW + 2, &r.refresh_token).is_ok());
}

#[test]
fn an_expired_session_cannot_be_refreshed() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let end = NOW + w.cfg.refresh_ttl as i64;
    assert_eq!(
        w.refresh(end, &r.refresh_token),
        Err(ApiError::InvalidRefreshToken)
    );
    assert_eq!(
        w.refresh(end + 3_600, &r.refresh_token),
        Err(ApiError::InvalidRefreshToken)
    );
}

#[test]
fn an_expired_session_still_in_kv_is_refused_and_deleted() {
    // KV expiry is lazy: the record can outlive expires_at a little.
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let sid = sid_of(&r.refresh_token);
    let end = NOW + w.cfg.refresh_ttl as i64;
    let edge = w.at(end + 10);
    w.store.now.set(end - 100);
    assert_eq!(
        block_on(edge.refresh(&r.refresh_token)),
        Err(ApiError::InvalidRefreshToken)
    );
    assert!(
        w.raw_entry(&session_key(&sid)).is_none(),
        "expired session deleted"
    );
}

#[test]
fn refresh_extends_the_session() {
    let w = World::new();
    let r1 = w.login_at(NOW, GOOD);
    let sid = sid_of(&r1.refresh_token);
    let later = NOW + 1_000_000;
    let r2 = w.refresh(later, &r1.refresh_token).expect("rotates");
    assert_eq!(r2.refresh_expires_in, w.cfg.refresh_ttl);
    let s = w.session(&sid).expect("session");
    assert_eq!(s.expires_at, later + w.cfg.refresh_ttl as i64);
    assert_eq!(s.created_at, NOW);
    let (_, exp) = w.raw_entry(&session_key(&sid)).expect("raw");
    assert_eq!(exp, Some(later + w.cfg.refresh_ttl as i64));
    // Past the original end, the session lives on.
    let beyond = NOW + w.cfg.refresh_ttl as i64 + 10;
    assert!(w.refresh(beyond, &r2.refresh_token).is_ok());
}

#[test]
fn refresh_carries_the_session_key_unionid_and_phone_along() {
    let w = World::new();
    let r = w.login_at(NOW, &phone_login_reply());
    let b = w
        .bind(NOW + 1, &r, PhoneRequest::Encrypted(encrypted("phone_ok")))
        .expect("binds");
    let r2 = w.refresh(NOW + 100, &b.refresh_token).expect("rotates");
    assert!(r2.phone_bound);
    assert_eq!(
        r2.pure_phone_number, None,
        "phone fields are for /auth/phone only"
    );
    let c = w.claims(&r2.access_token, NOW + 100);
    assert_eq!(c.phone.as_deref(), Some(PURE));
    assert_eq!(c.phone_cc.as_deref(), Some("86"));
    assert_eq!(c.unionid.as_deref(), Some("uUnion1"));
    let s = w.session(&sid_of(&r2.refresh_token)).expect("session");
    assert_eq!(s.session_key.secret(), phone_key());
}

#[test]
fn reuse_detection_remembers_retired_kept_tokens() {
    let w = World::new();
    let mut tokens = vec![w.login_at(NOW, GOOD).refresh_token];
    for i in 1..=20 {
        let next = w
            .refresh(NOW + i, tokens.last().expect("a token"))
            .expect("rotates");
        tokens.push(next.refresh_token);
    }
    let sid = sid_of(&tokens[0]);
    let s = w.session(&sid).expect("session");
    assert_eq!(s.retired.len(), RETIRED_KEPT);
    assert_eq!(s.prev_hash.as_deref(), Some(hash_of(&tokens[19]).as_str()));
    // tokens[0..3] fell off the list: merely invalid, the session survives.
    for old in &tokens[0..3] {
        assert_eq!(
            w.refresh(NOW + 100, old),
            Err(ApiError::InvalidRefreshToken)
        );
    }
    assert!(w.session(&sid).is_some());
    // tokens[3] is still remembered.
    assert_eq!(
        w.refresh(NOW + 100, &tokens[3]),
        Err(ApiError::RefreshReused)
    );
    assert!(w.session(&sid).is_none());
}

// ==================================================================== logout

#[test]
fn logout_deletes_the_session() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let sid = sid_of(&r.refresh_token);
    assert_eq!(block_on(w.at(NOW + 5).logout(Some(&bearer_of(&r)))), Ok(()));
    assert!(w.raw_entry(&session_key(&sid)).is_none());

    assert_eq!(
        w.refresh(NOW + 6, &r.refresh_token),
        Err(ApiError::InvalidRefreshToken)
    );
    assert_eq!(
        w.authenticate_err(NOW + 6, &r, true),
        Some(ApiError::SessionRevoked)
    );
    // Stateless checking still accepts the token until it expires
    // (SESSION_CHECK=refresh-only semantics).
    let auth = block_on(w.at(NOW + 6).authenticate(Some(&bearer_of(&r)), false))
        .expect("stateless check passes");
    assert_eq!(auth.access.claims.sub, "oUser1");
    assert_eq!(auth.access.claims.sid, sid);
    assert!(auth.session.is_none());
    // The user record is not touched.
    assert_eq!(w.user("oUser1").expect("user").login_count, 1);
}

#[test]
fn logout_ends_only_its_own_session() {
    let w = World::new();
    let a = w.login_at(NOW, GOOD);
    let b = w.login_at(NOW + 1, GOOD);
    block_on(w.at(NOW + 2).logout(Some(&bearer_of(&a)))).expect("logout");
    assert!(w.session(&sid_of(&a.refresh_token)).is_none());
    assert!(w.session(&sid_of(&b.refresh_token)).is_some());
    assert_eq!(w.authenticate_err(NOW + 2, &b, true), None);
    assert!(w.refresh(NOW + 3, &b.refresh_token).is_ok());
}

#[test]
fn logout_accepts_an_expired_but_genuine_token() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let late = NOW + 601;
    assert_eq!(
        w.authenticate_err(late, &r, false),
        Some(ApiError::TokenExpired)
    );
    assert_eq!(block_on(w.at(late).logout(Some(&bearer_of(&r)))), Ok(()));
    assert!(w
        .raw_entry(&session_key(&sid_of(&r.refresh_token)))
        .is_none());
}

#[test]
fn logout_needs_a_genuine_token() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    for header in [
        None,
        Some(""),
        Some("Bearer "),
        Some("Basic dXNlcjpwYXNz"),
        Some(r.access_token.as_str()),
    ] {
        assert_eq!(
            block_on(w.at(NOW).logout(header)),
            Err(ApiError::Unauthorized),
            "{header:?}"
        );
    }
    assert_eq!(
        block_on(w.at(NOW).logout(Some("Bearer not.a.jwt"))),
        Err(ApiError::InvalidToken)
    );
    // A token of another deployment (another TOKEN_SECRET) naming this sid.
    let mut other_cfg = test_config();
    other_cfg.token_key = crate::token::TokenKey::new("another-secret-0123456789-ABCDEFGHIJKLMNOP")
        .expect("strong key");
    let other = World::with(other_cfg);
    let forged = AccessClaims::new(APPID, "oUser1", &sid_of(&r.refresh_token));
    let forged =
        crate::token::issue_access(&other.cfg.token_key, &forged, NOW, 600).expect("issue");
    assert_eq!(
        block_on(w.at(NOW).logout(Some(&format!("Bearer {forged}")))),
        Err(ApiError::InvalidToken)
    );
    assert!(
        w.session(&sid_of(&r.refresh_token)).is_some(),
        "nothing was logged out"
    );
}

// ============================================================ session_info

#[test]
fn session_info_reports_both_expiries() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let info = block_on(w.at(NOW + 100).session_info(Some(&bearer_of(&r)))).expect("info");
    assert_eq!(
        info,
        SessionInfo {
            openid: "oUser1".into(),
            unionid: Some("uUnion1".into()),
            phone_bound: false,
            expires_at: NOW + 600,
            session_expires_at: NOW + w.cfg.refresh_ttl as i64,
        }
    );
    let v = serde_json::to_value(&info).expect("JSON");
    assert_eq!(
        v,
        json!({"openid": "oUser1", "unionid": "uUnion1", "phone_bound": false,
               "expires_at": NOW + 600, "session_expires_at": NOW + 2_592_000})
    );

    let r2 = w.refresh(NOW + 200, &r.refresh_token).expect("rotates");
    let info = block_on(w.at(NOW + 300).session_info(Some(&bearer_of(&r2)))).expect("info");
    assert_eq!(info.expires_at, NOW + 200 + 600);
    assert_eq!(
        info.session_expires_at,
        NOW + 200 + w.cfg.refresh_ttl as i64
    );
}

#[test]
fn session_info_after_logout_is_revoked_whatever_the_session_check() {
    for check in [SessionCheck::EveryRequest, SessionCheck::RefreshOnly] {
        let mut cfg = test_config();
        cfg.session_check = check;
        let w = World::with(cfg);
        let r = w.login_at(NOW, GOOD);
        block_on(w.at(NOW + 1).logout(Some(&bearer_of(&r)))).expect("logout");
        assert_eq!(
            block_on(w.at(NOW + 2).session_info(Some(&bearer_of(&r)))),
            Err(ApiError::SessionRevoked),
            "{check:?}"
        );
    }
}

#[test]
fn session_info_needs_a_valid_token() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    assert_eq!(
        block_on(w.at(NOW).session_info(None)),
        Err(ApiError::Unauthorized)
    );
    assert_eq!(
        block_on(w.at(NOW).session_info(Some("Bearer x.y.z"))),
        Err(ApiError::InvalidToken)
    );
    assert_eq!(
        block_on(w.at(NOW + 601).session_info(Some(&bearer_of(&r)))),
        Err(ApiError::TokenExpired)
    );
}

// ==================================================================== proxy

fn identity_of(r: &TokenResponse, phone: Option<&str>) -> Identity {
    Identity {
        openid: r.openid.clone(),
        unionid: r.unionid.clone(),
        appid: APPID.into(),
        phone: phone.map(str::to_string),
        phone_country: phone.map(|_| "86".to_string()),
    }
}

#[test]
fn proxy_requires_a_token_outside_public_paths() {
    let w = public_world();
    for header in [None, Some("Basic abc"), Some("Bearer ")] {
        assert_eq!(
            block_on(w.at(NOW).proxy_identity("/api/orders", header)),
            Err(ApiError::Unauthorized),
            "{header:?}"
        );
    }
    assert_eq!(
        block_on(w.at(NOW).proxy_identity("/api/orders", Some("Bearer bad"))),
        Err(ApiError::InvalidToken)
    );
}

#[test]
fn proxy_identity_carries_openid_unionid_and_appid() {
    let w = public_world();
    let r = w.login_at(NOW, GOOD);
    let id = block_on(
        w.at(NOW + 1)
            .proxy_identity("/api/orders?x=1", Some(&bearer_of(&r))),
    )
    .expect("passes")
    .expect("identified");
    assert_eq!(id, identity_of(&r, None));
    assert_eq!(id.unionid.as_deref(), Some("uUnion1"));
    assert_eq!(id.appid, APPID);
}

#[test]
fn public_paths_pass_without_or_with_a_bad_token_and_identify_with_a_good_one() {
    let w = public_world();
    let r = w.login_at(NOW, GOOD);
    let at = |path: &str, header: Option<&str>, now: i64| {
        block_on(w.at(now).proxy_identity(path, header))
    };
    assert_eq!(at("/public/news", None, NOW), Ok(None));
    assert_eq!(at("/public/news", Some("Bearer garbage"), NOW), Ok(None));
    assert_eq!(at("/public/news", Some("Basic abc"), NOW), Ok(None));
    // Expired: anonymous on a public path, refused elsewhere.
    assert_eq!(
        at("/public/news", Some(&bearer_of(&r)), NOW + 601),
        Ok(None)
    );
    assert_eq!(
        at("/api/orders", Some(&bearer_of(&r)), NOW + 601),
        Err(ApiError::TokenExpired)
    );
    assert_eq!(
        at("/public/news", Some(&bearer_of(&r)), NOW + 1),
        Ok(Some(identity_of(&r, None)))
    );
}

#[test]
fn every_request_checking_sees_a_logout_at_once() {
    let w = public_world();
    assert_eq!(w.cfg.session_check, SessionCheck::EveryRequest);
    let r = w.login_at(NOW, GOOD);
    block_on(w.at(NOW + 1).logout(Some(&bearer_of(&r)))).expect("logout");
    assert_eq!(
        block_on(
            w.at(NOW + 2)
                .proxy_identity("/api/orders", Some(&bearer_of(&r)))
        ),
        Err(ApiError::SessionRevoked)
    );
    // On a public path the revoked token just makes the request anonymous.
    assert_eq!(
        block_on(
            w.at(NOW + 2)
                .proxy_identity("/public/x", Some(&bearer_of(&r)))
        ),
        Ok(None)
    );
}

#[test]
fn refresh_only_checking_trusts_the_token_until_it_expires() {
    let mut cfg = test_config();
    cfg.session_check = SessionCheck::RefreshOnly;
    let w = World::with(cfg);
    let r = w.login_at(NOW, GOOD);
    block_on(w.at(NOW + 1).logout(Some(&bearer_of(&r)))).expect("logout");
    assert_eq!(
        block_on(
            w.at(NOW + 2)
                .proxy_identity("/api/orders", Some(&bearer_of(&r)))
        ),
        Ok(Some(identity_of(&r, None)))
    );
    assert_eq!(
        block_on(
            w.at(NOW + 601)
                .proxy_identity("/api/orders", Some(&bearer_of(&r)))
        ),
        Err(ApiError::TokenExpired)
    );
}

#[test]
fn require_phone_blocks_sessions_without_a_phone_except_on_public_paths() {
    let mut cfg = test_config();
    cfg.require_phone = true;
    cfg.public_paths = vec!["/public/".into()];
    let w = World::with(cfg);
    let r = w.login_at(NOW, &phone_login_reply());
    assert_eq!(
        block_on(
            w.at(NOW + 1)
                .proxy_identity("/api/orders", Some(&bearer_of(&r)))
        ),
        Err(ApiError::PhoneRequired)
    );
    assert_eq!(
        block_on(
            w.at(NOW + 1)
                .proxy_identity("/public/x", Some(&bearer_of(&r)))
        ),
        Ok(Some(identity_of(&r, None)))
    );
    assert_eq!(
        block_on(w.at(NOW + 1).proxy_identity("/public/x", None)),
        Ok(None)
    );

    // Once bound, the same (older) access token passes: the session is read.
    w.bind(NOW + 2, &r, PhoneRequest::Encrypted(encrypted("phone_ok")))
        .expect("binds");
    assert_eq!(
        block_on(
            w.at(NOW + 3)
                .proxy_identity("/api/orders", Some(&bearer_of(&r)))
        ),
        Ok(Some(identity_of(&r, Some(PURE))))
    );
}

#[test]
fn proxy_phone_comes_from_the_session_or_from_the_token() {
    let w = World::new();
    let r = w.login_at(NOW, &phone_login_reply());
    let b = w
        .bind(NOW + 1, &r, PhoneRequest::Encrypted(encrypted("phone_ok")))
        .expect("binds");
    let identify = |edge: TestEdge<'_>, tr: &TokenResponse| {
        block_on(edge.proxy_identity("/api/x", Some(&bearer_of(tr))))
            .expect("passes")
            .expect("id")
    };
    // every-request: the session is fresher than the pre-binding token.
    assert_eq!(identify(w.at(NOW + 2), &r).phone.as_deref(), Some(PURE));
    // refresh-only: only what the token says.
    let mut cfg = test_config();
    cfg.session_check = SessionCheck::RefreshOnly;
    let stateless = Edge {
        cfg: &cfg,
        ..w.at(NOW + 2)
    };
    assert_eq!(identify(stateless, &r).phone, None);
    let stateless = Edge {
        cfg: &cfg,
        ..w.at(NOW + 2)
    };
    assert_eq!(identify(stateless, &b), identity_of(&b, Some(PURE)));
}

// ======================================================= identity assertion

#[test]
fn no_identity_assertion_without_an_identity_key() {
    let mut cfg = test_config();
    cfg.identity_key = None;
    let w = World::with(cfg);
    let r = w.login_at(NOW, GOOD);
    assert_eq!(
        w.at(NOW).identity_assertion(&identity_of(&r, None)),
        Ok(None)
    );
}

#[test]
fn identity_assertion_is_a_short_lived_eddsa_jwt_for_the_origin() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let id = block_on(w.at(NOW + 5).proxy_identity("/api/x", Some(&bearer_of(&r))))
        .expect("passes")
        .expect("identified");
    let jwt = w
        .at(NOW + 5)
        .identity_assertion(&id)
        .expect("signs")
        .expect("key configured");
    assert_eq!(jwt.split('.').count(), 3);

    let key = w.cfg.identity_key.as_ref().expect("test config has a key");
    let header = jwt_part(&jwt, 0);
    assert_eq!(header["kid"], key.kid());
    assert_eq!(header["alg"], "EdDSA");

    let claims = jwt_part(&jwt, 1);
    assert_eq!(claims["aud"], w.cfg.origin_audience.as_str());
    assert_eq!(claims["aud"], "https://api.example.com");
    assert_eq!(claims["sub"], "oUser1");
    assert_eq!(claims["unionid"], "uUnion1");
    assert_eq!(claims["appid"], APPID);
    assert_eq!(claims["iss"], "wx-edge");
    assert!(claims.get("phone").is_none());
    let iat = claims["iat"].as_i64().expect("iat");
    let exp = claims["exp"].as_i64().expect("exp");
    assert_eq!(iat, NOW + 5);
    assert!(exp > iat && exp - iat <= 300, "iat {iat} exp {exp}");
    let jti = claims["jti"].as_str().expect("jti");
    assert_eq!(jti.len(), 32);

    // The signature checks out against the published key.
    use jwt_compact::{alg::Ed25519, AlgorithmExt, UntrustedToken};
    let untrusted = UntrustedToken::new(&jwt).expect("parses");
    let verified = Ed25519
        .validator::<IdentityClaims>(key.public_key())
        .validate(&untrusted)
        .expect("signature valid");
    assert_eq!(verified.claims().custom.sub, "oUser1");

    // A fresh jti each time.
    let again = w
        .at(NOW + 5)
        .identity_assertion(&id)
        .expect("signs")
        .expect("key");
    assert_ne!(jwt_part(&again, 1)["jti"], claims["jti"]);
}

#[test]
fn identity_assertion_carries_a_bound_phone() {
    let w = World::new();
    let r = w.login_at(NOW, &phone_login_reply());
    w.bind(NOW + 1, &r, PhoneRequest::Encrypted(encrypted("phone_ok")))
        .expect("binds");
    let id = block_on(w.at(NOW + 2).proxy_identity("/api/x", Some(&bearer_of(&r))))
        .expect("passes")
        .expect("identified");
    let jwt = w
        .at(NOW + 2)
        .identity_assertion(&id)
        .expect("signs")
        .expect("key");
    let claims = jwt_part(&jwt, 1);
    assert_eq!(claims["phone"], PURE);
    assert_eq!(claims["phone_country"], "86");
}

// ====================================================== phone, legacy path

#[test]
fn legacy_bind_decrypts_with_the_session_key_and_binds_the_phone() {
    assert_eq!(vector("phone_ok", "appid"), APPID);
    let w = World::new();
    let r = w.login_at(NOW, &phone_login_reply());
    let sid = sid_of(&r.refresh_token);
    let b = w
        .bind(NOW + 10, &r, PhoneRequest::Encrypted(encrypted("phone_ok")))
        .expect("binds");

    assert_eq!(b.pure_phone_number.as_deref(), Some(PURE));
    assert_eq!(b.phone_number.as_deref(), Some(PURE));
    assert_eq!(b.country_code.as_deref(), Some("86"));
    assert!(b.phone_bound);
    assert_eq!(b.token_type, "Bearer");
    assert_eq!(b.expires_in, 600);
    // Binding does not extend the session.
    assert_eq!(b.refresh_expires_in, w.cfg.refresh_ttl - 10);
    assert_eq!(b.openid, "oUser1");
    assert_ne!(b.refresh_token, r.refresh_token);
    assert_eq!(sid_of(&b.refresh_token), sid);
    let v = serde_json::to_value(&b).expect("JSON");
    assert_eq!(v["purePhoneNumber"], PURE);
    assert_eq!(v["phoneNumber"], PURE);
    assert_eq!(v["countryCode"], "86");
    assert_eq!(v["phone_bound"], true);

    let c = w.claims(&b.access_token, NOW + 10);
    assert_eq!(c.phone.as_deref(), Some(PURE));
    assert_eq!(c.phone_cc.as_deref(), Some("86"));
    assert_eq!(c.sid, sid);
    assert_eq!(w.sent_len(), 1, "the legacy path asks WeChat nothing");

    let u = w.user("oUser1").expect("user");
    assert_eq!(u.phone, Some(expected_phone()));
    assert_eq!(u.phone_bound_at, Some(NOW + 10));
    let s = w.session(&sid).expect("session");
    assert_eq!(s.phone, Some(expected_phone()));
    assert_eq!(s.refresh_hash, hash_of(&b.refresh_token));
    assert_eq!(s.session_key.secret(), phone_key());

    // The new refresh token works; a later login of the same user is bound.
    assert!(
        w.refresh(NOW + 20, &b.refresh_token)
            .expect("rotates")
            .phone_bound
    );
    let again = w.login_at(NOW + 100, GOOD);
    assert!(again.phone_bound);
    assert_eq!(
        w.claims(&again.access_token, NOW + 100).phone.as_deref(),
        Some(PURE)
    );
    let info = block_on(w.at(NOW + 100).session_info(Some(&bearer_of(&again)))).expect("info");
    assert!(info.phone_bound);
}

#[test]
fn the_refresh_token_replaced_by_binding_is_retired() {
    let w = World::new();
    let r = w.login_at(NOW, &phone_login_reply());
    let sid = sid_of(&r.refresh_token);
    let b = w
        .bind(NOW + 10, &r, PhoneRequest::Encrypted(encrypted("phone_ok")))
        .expect("binds");
    // Within the grace it does not hand out a phone-less pair, nor revoke.
    assert!(w.refresh(NOW + 11, &r.refresh_token).is_err());
    assert!(w.session(&sid).is_some());
    // After the grace it is reuse.
    assert_eq!(
        w.refresh(NOW + 10 + REFRESH_GRACE + 1, &r.refresh_token),
        Err(ApiError::RefreshReused)
    );
    assert!(w.session(&sid).is_none());
    assert_eq!(
        w.refresh(NOW + 50, &b.refresh_token),
        Err(ApiError::InvalidRefreshToken)
    );
}

#[test]
fn legacy_data_under_a_stale_session_key_does_not_decrypt() {
    let w = World::new();
    let old = w.login_at(NOW, &phone_login_reply());
    let new = w.login_at(NOW + 5, GOOD); // wx.login again: another session_key
    assert_ne!(GOOD_KEY, phone_key());
    let e = w
        .bind(
            NOW + 10,
            &new,
            PhoneRequest::Encrypted(encrypted("phone_ok")),
        )
        .expect_err("stale data");
    assert_eq!(e, ApiError::DecryptFailed);
    assert_eq!(e.status(), 400);
    assert!(w.user("oUser1").expect("user").phone.is_none());
    assert!(w
        .session(&sid_of(&new.refresh_token))
        .expect("session")
        .phone
        .is_none());
    // The session that owns the key still can.
    assert!(w
        .bind(
            NOW + 11,
            &old,
            PhoneRequest::Encrypted(encrypted("phone_ok"))
        )
        .is_ok());
}

#[test]
fn legacy_data_of_another_app_is_a_watermark_mismatch() {
    let w = World::new();
    let r = w.login_at(NOW, &phone_login_reply());
    assert_eq!(
        w.bind(
            NOW + 1,
            &r,
            PhoneRequest::Encrypted(encrypted("phone_foreign_appid"))
        ),
        Err(ApiError::WatermarkMismatch)
    );
    assert!(w.user("oUser1").expect("user").phone.is_none());
    let s = w.session(&sid_of(&r.refresh_token)).expect("session");
    assert!(s.phone.is_none());
    assert_eq!(s.refresh_hash, hash_of(&r.refresh_token), "nothing rotated");
}

#[test]
fn legacy_data_survives_plus_turned_into_space() {
    let w = World::new();
    let r = w.login_at(NOW, &phone_login_reply());
    let mut enc = encrypted("phone_ok");
    assert!(
        enc.encrypted_data.contains('+'),
        "the vector must exercise this"
    );
    enc.encrypted_data = enc.encrypted_data.replace('+', " ");
    let b = w
        .bind(NOW + 1, &r, PhoneRequest::Encrypted(enc))
        .expect("binds");
    assert_eq!(b.pure_phone_number.as_deref(), Some(PURE));
}

#[test]
fn malformed_legacy_fields_are_invalid_requests() {
    let w = World::new();
    let r = w.login_at(NOW, &phone_login_reply());
    let good = encrypted("phone_ok");
    for iv in ["AAAA", "not base64!", "", "AAECAwQFBgcICQoLDA0ODxAR"] {
        let req = EncryptedPhone {
            iv: iv.into(),
            ..good.clone()
        };
        assert_eq!(
            w.bind(NOW + 1, &r, PhoneRequest::Encrypted(req)),
            Err(ApiError::InvalidRequest(
                "iv must be the base64 of 16 bytes"
            )),
            "iv {iv:?}"
        );
    }
    for data in ["", "AAAA", "%%%"] {
        let req = EncryptedPhone {
            encrypted_data: data.into(),
            ..good.clone()
        };
        assert_eq!(
            w.bind(NOW + 1, &r, PhoneRequest::Encrypted(req)),
            Err(ApiError::InvalidRequest(
                "encryptedData must be base64 of whole AES blocks"
            )),
            "data {data:?}"
        );
    }
    assert!(w
        .session(&sid_of(&r.refresh_token))
        .expect("session")
        .phone
        .is_none());
}

#[test]
fn binding_needs_a_live_session() {
    let w = World::new();
    let r = w.login_at(NOW, &phone_login_reply());
    let req = || PhoneRequest::Encrypted(encrypted("phone_ok"));
    assert_eq!(
        block_on(w.at(NOW).bind_phone(None, req())),
        Err(ApiError::Unauthorized)
    );
    assert_eq!(
        block_on(w.at(NOW).bind_phone(Some("Bearer forged"), req())),
        Err(ApiError::InvalidToken)
    );
    assert_eq!(w.bind(NOW + 601, &r, req()), Err(ApiError::TokenExpired));
    block_on(w.at(NOW + 1).logout(Some(&bearer_of(&r)))).expect("logout");
    assert_eq!(w.bind(NOW + 2, &r, req()), Err(ApiError::SessionRevoked));
    assert!(w.user("oUser1").expect("user").phone.is_none());
}

// ======================================================== phone, code path

fn code_world() -> (World, TokenResponse) {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    (w, r)
}

fn cached_wx_token(w: &World) -> Option<CachedWxToken> {
    block_on(get_json(&w.store, WX_TOKEN_KEY)).expect("store readable")
}

#[test]
fn code_bind_uses_stable_token_then_getuserphonenumber() {
    let (w, r) = code_world();
    w.reply(STABLE_T1);
    w.reply(PHONE_REPLY);
    let b = w
        .bind(NOW + 10, &r, PhoneRequest::Code("phoneCode1"))
        .expect("binds");
    assert_eq!(b.pure_phone_number.as_deref(), Some(PURE));
    assert_eq!(b.phone_number.as_deref(), Some(PURE));
    assert_eq!(b.country_code.as_deref(), Some("86"));
    assert!(b.phone_bound);
    assert_eq!(
        w.claims(&b.access_token, NOW + 10).phone.as_deref(),
        Some(PURE)
    );

    assert_eq!(w.sent_len(), 3);
    assert_eq!(w.sent_method(1), Method::Post);
    assert_eq!(w.sent_url(1), format!("{API}/cgi-bin/stable_token"));
    let body = w.sent_body(1);
    assert_eq!(body["grant_type"], "client_credential");
    assert_eq!(body["appid"], APPID);
    assert_eq!(body["force_refresh"], false);
    assert_eq!(w.sent_method(2), Method::Post);
    assert_eq!(
        w.sent_url(2),
        format!("{API}/wxa/business/getuserphonenumber?access_token=T1")
    );
    assert_eq!(
        w.sent_body(2),
        json!({"code": "phoneCode1", "openid": "oUser1"})
    );

    let cached = cached_wx_token(&w).expect("token cached in KV");
    assert_eq!(cached.access_token.secret(), "T1");
    assert_eq!(cached.expires_at, NOW + 10 + 7200);
    assert_eq!(
        w.user("oUser1").expect("user").phone,
        Some(expected_phone())
    );
    assert_eq!(
        w.session(&sid_of(&r.refresh_token)).expect("session").phone,
        Some(expected_phone())
    );
}

#[test]
fn the_wechat_access_token_is_cached_while_it_lives() {
    let mut cfg = test_config();
    cfg.access_ttl = 86_400; // one access token for the whole test
    let w = World::with(cfg);
    let r = w.login_at(NOW, GOOD);
    w.reply(STABLE_T1);
    w.reply(PHONE_REPLY);
    w.bind(NOW, &r, PhoneRequest::Code("c1"))
        .expect("first bind");
    assert_eq!(w.sent_len(), 3);

    // Still more than WX_TOKEN_EARLY left: no stable_token call.
    w.reply(PHONE_REPLY);
    w.bind(
        NOW + 7200 - WX_TOKEN_EARLY - 1,
        &r,
        PhoneRequest::Code("c2"),
    )
    .expect("cached");
    assert_eq!(w.sent_len(), 4);
    assert_eq!(
        w.sent_url(3),
        format!("{API}/wxa/business/getuserphonenumber?access_token=T1")
    );

    // Within WX_TOKEN_EARLY of its end: fetched again.
    let late = NOW + 7200 - WX_TOKEN_EARLY + 1;
    w.reply(STABLE_T2);
    w.reply(PHONE_REPLY);
    w.bind(late, &r, PhoneRequest::Code("c3"))
        .expect("refetched");
    assert_eq!(w.sent_len(), 6);
    assert_eq!(w.sent_url(4), format!("{API}/cgi-bin/stable_token"));
    assert_eq!(w.sent_body(4)["force_refresh"], false);
    assert_eq!(
        w.sent_url(5),
        format!("{API}/wxa/business/getuserphonenumber?access_token=T2")
    );
    let cached = cached_wx_token(&w).expect("cached");
    assert_eq!(cached.access_token.secret(), "T2");
    assert_eq!(cached.expires_at, late + 7200);
}

#[test]
fn another_isolate_takes_the_wechat_token_from_kv() {
    let (w, r) = code_world();
    w.reply(STABLE_T1);
    w.reply(PHONE_REPLY);
    w.bind(NOW + 1, &r, PhoneRequest::Code("c1"))
        .expect("first bind");
    assert_eq!(w.sent_len(), 3);

    let other = IsolateState::default();
    let edge = Edge {
        isolate: &other,
        ..w.at(NOW + 2)
    };
    w.reply(PHONE_REPLY);
    block_on(edge.bind_phone(Some(&bearer_of(&r)), PhoneRequest::Code("c2"))).expect("binds");
    assert_eq!(w.sent_len(), 4, "no stable_token call");
    assert_eq!(
        w.sent_url(3),
        format!("{API}/wxa/business/getuserphonenumber?access_token=T1")
    );

    // A third isolate, with KV's copy gone, fetches it.
    block_on(w.store.delete(WX_TOKEN_KEY)).expect("delete");
    let third = IsolateState::default();
    let edge = Edge {
        isolate: &third,
        ..w.at(NOW + 3)
    };
    w.reply(STABLE_T2);
    w.reply(PHONE_REPLY);
    block_on(edge.bind_phone(Some(&bearer_of(&r)), PhoneRequest::Code("c3"))).expect("binds");
    assert_eq!(w.sent_len(), 6);
    assert_eq!(w.sent_url(4), format!("{API}/cgi-bin/stable_token"));
    assert_eq!(
        w.sent_url(5),
        format!("{API}/wxa/business/getuserphonenumber?access_token=T2")
    );
}

#[test]
fn a_refused_wechat_token_is_refetched_with_force_when_needed() {
    for token_error in [40001, 40014, 42001] {
        let (w, r) = code_world();
        w.reply(STABLE_T1);
        w.reply(&errcode(token_error));
        w.reply(STABLE_T1); // normal mode hands back the refused token
        w.reply(STABLE_T2); // force_refresh
        w.reply(PHONE_REPLY);
        let b = w
            .bind(NOW + 1, &r, PhoneRequest::Code("pc"))
            .expect("retried");
        assert!(b.phone_bound);
        assert_eq!(w.sent_len(), 6, "errcode {token_error}");
        assert_eq!(w.sent_url(1), format!("{API}/cgi-bin/stable_token"));
        assert_eq!(w.sent_body(1)["force_refresh"], false);
        assert_eq!(
            w.sent_url(2),
            format!("{API}/wxa/business/getuserphonenumber?access_token=T1")
        );
        assert_eq!(w.sent_url(3), format!("{API}/cgi-bin/stable_token"));
        assert_eq!(w.sent_body(3)["force_refresh"], false);
        assert_eq!(w.sent_url(4), format!("{API}/cgi-bin/stable_token"));
        assert_eq!(w.sent_body(4)["force_refresh"], true);
        assert_eq!(
            w.sent_url(5),
            format!("{API}/wxa/business/getuserphonenumber?access_token=T2")
        );
        assert_eq!(w.sent_body(5), json!({"code": "pc", "openid": "oUser1"}));
        assert_eq!(
            cached_wx_token(&w).expect("cached").access_token.secret(),
            "T2"
        );
    }
}

#[test]
fn a_refused_wechat_token_replaced_in_normal_mode_needs_no_force() {
    let (w, r) = code_world();
    w.reply(STABLE_T1);
    w.reply(&errcode(40001));
    w.reply(STABLE_T2);
    w.reply(PHONE_REPLY);
    w.bind(NOW + 1, &r, PhoneRequest::Code("pc"))
        .expect("retried");
    assert_eq!(w.sent_len(), 5);
    assert_eq!(w.sent_body(3)["force_refresh"], false);
    assert_eq!(
        w.sent_url(4),
        format!("{API}/wxa/business/getuserphonenumber?access_token=T2")
    );
}

#[test]
fn a_token_error_is_retried_only_once() {
    let (w, r) = code_world();
    w.reply(STABLE_T1);
    w.reply(&errcode(40001));
    w.reply(STABLE_T2);
    w.reply(&errcode(40001));
    w.reply(PHONE_REPLY);
    assert_eq!(
        w.bind(NOW + 1, &r, PhoneRequest::Code("pc")),
        Err(ApiError::WechatUnavailable {
            errcode: Some(40001)
        })
    );
    assert_eq!(w.sent_len(), 5);
    assert!(w.user("oUser1").expect("user").phone.is_none());
}

#[test]
fn an_invalid_phone_code_is_invalid_code_and_binds_nothing() {
    let (w, r) = code_world();
    w.reply(STABLE_T1);
    w.reply(&errcode(40029));
    w.reply(PHONE_REPLY);
    let e = w
        .bind(NOW + 1, &r, PhoneRequest::Code("used"))
        .expect_err("refused");
    // Its own variant (a phone code, not a wx.login code), the contract's
    // 400 invalid_code all the same.
    assert_eq!(e, ApiError::InvalidPhoneCode { errcode: 40029 });
    assert_eq!(e.code(), "invalid_code");
    assert_eq!(e.status(), 400);
    assert_eq!(e.wechat_errcode(), Some(40029));
    assert_eq!(w.sent_len(), 3, "no retry of 40029");
    assert!(w.user("oUser1").expect("user").phone.is_none());
    let s = w.session(&sid_of(&r.refresh_token)).expect("session");
    assert!(s.phone.is_none());
    assert_eq!(s.refresh_hash, hash_of(&r.refresh_token));
}

#[test]
fn phone_info_of_another_app_is_a_watermark_mismatch() {
    let (w, r) = code_world();
    w.reply(STABLE_T1);
    w.reply(PHONE_REPLY_FOREIGN);
    assert_eq!(
        w.bind(NOW + 1, &r, PhoneRequest::Code("pc")),
        Err(ApiError::WatermarkMismatch)
    );
    assert!(w.user("oUser1").expect("user").phone.is_none());
}

#[test]
fn a_malformed_phone_code_never_reaches_wechat() {
    let (w, r) = code_world();
    w.reply(STABLE_T1);
    for code in ["", "has space", "中文"] {
        let e = w
            .bind(NOW + 1, &r, PhoneRequest::Code(code))
            .expect_err("malformed");
        assert!(matches!(e, ApiError::InvalidRequest(_)), "{code:?}: {e:?}");
    }
    assert_eq!(w.sent_len(), 1, "only the login");
}

#[test]
fn stable_token_refusing_our_credentials_is_a_misconfiguration() {
    let (w, r) = code_world();
    w.reply(&errcode(40125));
    assert_eq!(
        w.bind(NOW + 1, &r, PhoneRequest::Code("pc")),
        Err(ApiError::ServerMisconfigured {
            variable: "WX_APPSECRET",
            problem: "was refused by WeChat (errcode 40125)",
        })
    );
    assert!(cached_wx_token(&w).is_none());
}

// ================================================================ allowlist

fn allowlist_world() -> (World, TokenResponse) {
    let mut cfg = test_config();
    cfg.phone_allowlist = true;
    let w = World::with(cfg);
    let r = w.login_at(NOW, &phone_login_reply());
    (w, r)
}

#[test]
fn an_unlisted_phone_is_not_an_internal_user_and_nothing_is_bound() {
    let (w, r) = allowlist_world();
    let e = w
        .bind(NOW + 1, &r, PhoneRequest::Encrypted(encrypted("phone_ok")))
        .expect_err("not listed");
    assert_eq!(e, ApiError::NotInternalUser);
    assert_eq!(e.status(), 403);
    let u = w.user("oUser1").expect("user");
    assert!(u.phone.is_none() && u.phone_bound_at.is_none());
    let s = w.session(&sid_of(&r.refresh_token)).expect("session");
    assert!(s.phone.is_none());
    assert_eq!(
        s.refresh_hash,
        hash_of(&r.refresh_token),
        "pair not rotated"
    );
    assert!(
        !w.refresh(NOW + 2, &r.refresh_token)
            .expect("still current")
            .phone_bound
    );
}

#[test]
fn a_listed_phone_binds() {
    let (w, r) = allowlist_world();
    w.allow(PURE);
    let b = w
        .bind(NOW + 1, &r, PhoneRequest::Encrypted(encrypted("phone_ok")))
        .expect("listed");
    assert!(b.phone_bound);
    assert_eq!(
        w.user("oUser1").expect("user").phone,
        Some(expected_phone())
    );
    // Listed users keep their phone on later logins.
    assert!(w.login_at(NOW + 10, GOOD).phone_bound);
}

#[test]
fn a_phone_taken_off_the_list_is_dropped_from_new_sessions_and_refreshes() {
    let (w, r) = allowlist_world();
    w.allow(PURE);
    let b = w
        .bind(NOW + 1, &r, PhoneRequest::Encrypted(encrypted("phone_ok")))
        .expect("listed");
    block_on(w.store.delete(&allow_key(PURE))).expect("delete");

    let again = w.login_at(NOW + 10, GOOD);
    assert!(!again.phone_bound);
    assert_eq!(w.claims(&again.access_token, NOW + 10).phone, None);
    assert!(w
        .session(&sid_of(&again.refresh_token))
        .expect("session")
        .phone
        .is_none());
    // The user record still remembers the number (re-listing restores it).
    assert_eq!(
        w.user("oUser1").expect("user").phone,
        Some(expected_phone())
    );

    let refreshed = w.refresh(NOW + 20, &b.refresh_token).expect("rotates");
    assert!(!refreshed.phone_bound);
    assert_eq!(w.claims(&refreshed.access_token, NOW + 20).phone, None);
    assert!(w
        .session(&sid_of(&b.refresh_token))
        .expect("session")
        .phone
        .is_none());

    w.allow(PURE);
    assert!(w.login_at(NOW + 30, GOOD).phone_bound);
}

// ============================================================ failures

#[test]
fn a_failing_store_is_internal_never_a_panic() {
    let w = World::new();
    let r = w.login_at(NOW, &phone_login_reply());
    w.store.fail.set(true);
    let auth = Some(bearer_of(&r));
    let auth = auth.as_deref();

    w.reply(GOOD);
    assert_eq!(
        block_on(w.at(NOW + 1).login("code", None)),
        Err(ApiError::Internal)
    );
    assert_eq!(
        w.refresh(NOW + 1, &r.refresh_token),
        Err(ApiError::Internal)
    );
    assert_eq!(
        block_on(w.at(NOW + 1).logout(auth)),
        Err(ApiError::Internal)
    );
    assert_eq!(
        block_on(w.at(NOW + 1).session_info(auth)),
        Err(ApiError::Internal)
    );
    assert_eq!(
        block_on(w.at(NOW + 1).authenticate(auth, true)).err(),
        Some(ApiError::Internal)
    );
    assert!(
        block_on(w.at(NOW + 1).authenticate(auth, false)).is_ok(),
        "stateless"
    );
    assert_eq!(
        block_on(w.at(NOW + 1).proxy_identity("/api/x", auth)),
        Err(ApiError::Internal)
    );
    assert_eq!(
        w.bind(NOW + 1, &r, PhoneRequest::Encrypted(encrypted("phone_ok"))),
        Err(ApiError::Internal)
    );
    assert_eq!(
        block_on(w.at(NOW + 1).wx_access_token(None)).map(|t| t.secret().to_string()),
        Err(ApiError::Internal)
    );
    assert_eq!(ApiError::Internal.status(), 500);

    // Back up: nothing was lost.
    w.store.fail.set(false);
    assert!(w.refresh(NOW + 2, &r.refresh_token).is_ok());
}

struct BrokenRandom;

impl Random for BrokenRandom {
    fn fill(&self, _: &mut [u8]) -> Result<(), RandomError> {
        Err(RandomError)
    }
}

#[test]
fn a_failing_random_source_is_internal() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let edge = Edge {
        cfg: &w.cfg,
        store: &w.store,
        wechat: &w.wx,
        rng: &BrokenRandom,
        isolate: &w.isolate,
        now: NOW + 1,
    };
    w.reply(&format!(
        r#"{{"openid":"oOther","session_key":"{GOOD_KEY}"}}"#
    ));
    assert_eq!(block_on(edge.login("code", None)), Err(ApiError::Internal));
    assert!(w.user("oOther").is_none(), "no half-made login");
    assert_eq!(
        block_on(edge.refresh(&r.refresh_token)),
        Err(ApiError::Internal)
    );
    assert_eq!(
        w.session(&sid_of(&r.refresh_token))
            .expect("session")
            .refresh_hash,
        hash_of(&r.refresh_token),
        "a failed rotation leaves the session as it was"
    );
    assert_eq!(
        edge.identity_assertion(&identity_of(&r, None)),
        Err(ApiError::Internal)
    );
}

// ============================================================ no leaks

fn show_err(e: &ApiError, shown: &mut Vec<String>) {
    shown.push(format!("{e:?} {e}"));
    shown.push(e.to_response().1);
}

#[test]
fn nothing_returned_carries_a_session_key_or_the_app_secret() {
    const WX_TOKEN: &str = "WXACCESSTOKEN-secret-0987654321";
    let mut cfg = test_config();
    cfg.public_paths = vec!["/public/".into()];
    let w = World::with(cfg);
    let mut shown: Vec<String> = Vec::new();
    let mut json_shown: Vec<String> = Vec::new();

    let r = w.login_at(NOW, &phone_login_reply());
    shown.push(format!("{r:?}"));
    json_shown.push(serde_json::to_string(&r).expect("json"));
    let b = w
        .bind(NOW + 1, &r, PhoneRequest::Encrypted(encrypted("phone_ok")))
        .expect("binds");
    shown.push(format!("{b:?}"));
    json_shown.push(serde_json::to_string(&b).expect("json"));
    let r2 = w.refresh(NOW + 2, &b.refresh_token).expect("refresh");
    shown.push(format!("{r2:?}"));
    let grace = w.refresh(NOW + 3, &b.refresh_token).expect("grace");
    shown.push(format!("{grace:?}"));
    let info = block_on(w.at(NOW + 3).session_info(Some(&bearer_of(&r2)))).expect("info");
    shown.push(format!("{info:?}"));
    json_shown.push(serde_json::to_string(&info).expect("json"));
    let auth = block_on(w.at(NOW + 3).authenticate(Some(&bearer_of(&r2)), true)).expect("auth");
    shown.push(format!("{:?} {:?}", auth.access, auth.session));
    let id = block_on(
        w.at(NOW + 3)
            .proxy_identity("/api/x", Some(&bearer_of(&r2))),
    )
    .expect("passes");
    shown.push(format!("{id:?}"));
    let id = id.expect("identified");
    let assertion = w.at(NOW + 3).identity_assertion(&id).expect("signs");
    shown.push(format!("{assertion:?}"));
    for part in assertion.as_deref().expect("key").split('.').take(2) {
        shown.push(String::from_utf8_lossy(&B64URL.decode(part).expect("b64")).into_owned());
    }
    for part in r2.access_token.split('.').take(2) {
        shown.push(String::from_utf8_lossy(&B64URL.decode(part).expect("b64")).into_owned());
    }

    // The code path, with a WeChat access token to keep quiet too.
    let g = w.login_at(NOW + 4, GOOD);
    w.reply(&format!(
        r#"{{"access_token":"{WX_TOKEN}","expires_in":7200}}"#
    ));
    w.reply(PHONE_REPLY);
    let gb = w
        .bind(NOW + 5, &g, PhoneRequest::Code("pc"))
        .expect("binds");
    shown.push(format!("{gb:?}"));
    json_shown.push(serde_json::to_string(&gb).expect("json"));
    let token = block_on(w.at(NOW + 5).wx_access_token(None)).expect("cached");
    shown.push(format!("{token:?}"));

    // Errors along the way.
    let stale = w.bind(NOW + 6, &g, PhoneRequest::Encrypted(encrypted("phone_ok")));
    show_err(&stale.expect_err("stale key"), &mut shown);
    let foreign = w.bind(
        NOW + 6,
        &r2,
        PhoneRequest::Encrypted(encrypted("phone_foreign_appid")),
    );
    show_err(&foreign.expect_err("foreign"), &mut shown);
    w.reply(&errcode(40163));
    let used = block_on(w.at(NOW + 7).login("used", None));
    show_err(&used.expect_err("used code"), &mut shown);
    w.reply(&format!(r#"{{"session_key":"{GOOD_KEY}"}}"#));
    let partial = block_on(w.at(NOW + 7).login("c", None));
    show_err(&partial.expect_err("no openid"), &mut shown);
    w.reply(&errcode(40001));
    w.reply(&format!(
        r#"{{"access_token":"{WX_TOKEN}","expires_in":7200}}"#
    ));
    w.reply(&format!(
        r#"{{"access_token":"{WX_TOKEN}","expires_in":7200}}"#
    ));
    w.reply(&format!(r#"{{"errcode":40001,"errmsg":"{WX_TOKEN}"}}"#));
    let refused = w.bind(NOW + 8, &g, PhoneRequest::Code("pc2"));
    show_err(&refused.expect_err("refused twice"), &mut shown);
    let reused = w.refresh(NOW + 100, &b.refresh_token);
    show_err(&reused.expect_err("reuse"), &mut shown);

    // What went to WeChat is not printable with its secrets either.
    shown.push(format!("{:?}", w.wx.sent.borrow()));
    // Records read back print redacted.
    shown.push(format!("{:?}", w.session(&sid_of(&g.refresh_token))));
    shown.push(format!("{:?}", cached_wx_token(&w)));

    let phone_key = phone_key();
    for s in shown.iter().chain(json_shown.iter()) {
        assert!(!s.contains(&phone_key), "session_key leaked: {s}");
        assert!(!s.contains(GOOD_KEY), "session_key leaked: {s}");
        assert!(!s.contains(APP_SECRET), "AppSecret leaked: {s}");
        assert!(!s.contains(WX_TOKEN), "WeChat access token leaked: {s}");
    }
    for s in &json_shown {
        assert!(!s.contains("session_key"), "{s}");
    }
}

// ============================================================ known bugs

#[test]
fn repeated_binding_keeps_at_most_retired_kept_hashes() {
    let w = World::new();
    let r = w.login_at(NOW, &phone_login_reply());
    for i in 0..(RETIRED_KEPT as i64 + 4) {
        w.bind(NOW + i, &r, PhoneRequest::Encrypted(encrypted("phone_ok")))
            .expect("the same access token binds again");
    }
    let s = w.session(&sid_of(&r.refresh_token)).expect("session");
    assert!(
        s.retired.len() <= RETIRED_KEPT,
        "{} retired hashes kept, RETIRED_KEPT is {RETIRED_KEPT}",
        s.retired.len()
    );
}

#[test]
fn a_phone_bound_on_one_device_appears_in_the_other_devices_later_tokens() {
    let w = World::new();
    let phone_device = w.login_at(NOW, &phone_login_reply());
    let other_device = w.login_at(NOW + 1, GOOD);
    w.bind(
        NOW + 2,
        &phone_device,
        PhoneRequest::Encrypted(encrypted("phone_ok")),
    )
    .expect("binds");
    // The contract: "The phone is bound to the user record and appears in
    // later tokens and identity headers."
    let later = w
        .refresh(NOW + 10, &other_device.refresh_token)
        .expect("rotates");
    assert!(later.phone_bound);
    assert_eq!(
        w.claims(&later.access_token, NOW + 10).phone.as_deref(),
        Some(PURE)
    );
}

#[test]
fn binding_without_a_readable_user_record_still_binds_the_user() {
    let w = World::new();
    let r = w.login_at(NOW, &phone_login_reply());
    // A user record this version cannot read (lost, or an older schema).
    block_on(w.store.put(&user_key("oUser1"), "{\"legacy\":true}", None)).expect("put");
    let b = w
        .bind(NOW + 1, &r, PhoneRequest::Encrypted(encrypted("phone_ok")))
        .expect("binds");
    assert!(b.phone_bound);
    // The contract: "The phone is bound to the user record".
    assert_eq!(
        w.user("oUser1").and_then(|u| u.phone),
        Some(expected_phone())
    );
    assert!(w.login_at(NOW + 10, GOOD).phone_bound);
}

// ============================================ concurrency within an isolate

/// KV with latency: every operation lets other requests run first, so
/// concurrent requests interleave between reading and writing.
struct SlowStore<'a>(&'a MemoryStore);

/// `w`'s deployment, but over the slow KV.
fn slow_edge<'a>(
    w: &'a World,
    slow: &'a SlowStore<'a>,
    now: i64,
) -> Edge<'a, SlowStore<'a>, Scripted, OsRandom> {
    w.store.now.set(now);
    Edge {
        cfg: &w.cfg,
        store: slow,
        wechat: &w.wx,
        rng: &w.rng,
        isolate: &w.isolate,
        now,
    }
}

impl Store for SlowStore<'_> {
    async fn get(&self, key: &str) -> Result<Option<String>, crate::store::StoreError> {
        YieldOnce(false).await;
        self.0.get(key).await
    }
    async fn put(
        &self,
        key: &str,
        value: &str,
        ttl: Option<u64>,
    ) -> Result<(), crate::store::StoreError> {
        YieldOnce(false).await;
        self.0.put(key, value, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<(), crate::store::StoreError> {
        YieldOnce(false).await;
        self.0.delete(key).await
    }
}

#[test]
fn concurrent_refreshes_in_one_isolate_get_the_same_new_token() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let sid = sid_of(&r.refresh_token);
    let slow = SlowStore(&w.store);
    let edge = slow_edge(&w, &slow, NOW + 5);
    let (a, b) = block_on(async {
        futures_util::join!(
            edge.refresh(&r.refresh_token),
            edge.refresh(&r.refresh_token)
        )
    });
    let (a, b) = (a.expect("first"), b.expect("second"));
    assert_eq!(a.refresh_token, b.refresh_token, "one rotation, shared");
    let s = w.session(&sid).expect("session");
    assert_eq!(s.refresh_hash, hash_of(&a.refresh_token));
    assert_eq!(
        s.prev_hash.as_deref(),
        Some(hash_of(&r.refresh_token).as_str())
    );
    assert!(s.retired.is_empty());
    assert!(w.isolate.refreshing.borrow().is_empty(), "lock released");
    assert!(w.refresh(NOW + 6, &a.refresh_token).is_ok());
}

#[test]
fn concurrent_phone_bindings_in_one_isolate_fetch_the_wechat_token_once() {
    let (w, r) = code_world();
    let slow = SlowStore(&w.store);
    let edge = slow_edge(&w, &slow, NOW + 5);
    w.reply(STABLE_T1);
    w.reply(PHONE_REPLY);
    w.reply(PHONE_REPLY);
    let auth = bearer_of(&r);
    let (a, b) = block_on(async {
        futures_util::join!(
            edge.bind_phone(Some(&auth), PhoneRequest::Code("c1")),
            edge.bind_phone(Some(&auth), PhoneRequest::Code("c2"))
        )
    });
    assert!(a.expect("first").phone_bound);
    assert!(b.expect("second").phone_bound);
    let urls: Vec<String> = (1..w.sent_len()).map(|i| w.sent_url(i)).collect();
    let stable = urls
        .iter()
        .filter(|u| u.ends_with("/cgi-bin/stable_token"))
        .count();
    assert_eq!(stable, 1, "{urls:?}");
    let phone_url = format!("{API}/wxa/business/getuserphonenumber?access_token=T1");
    assert_eq!(
        urls.iter().filter(|u| **u == phone_url).count(),
        2,
        "{urls:?}"
    );
}

#[test]
fn the_refresh_lock_is_released_however_refresh_ends() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let r2 = w.refresh(NOW + 1, &r.refresh_token).expect("rotates");
    assert!(w.isolate.refreshing.borrow().is_empty());
    let wrong = format!("{}.{}", sid_of(&r.refresh_token), B64URL.encode([9u8; 32]));
    assert_eq!(
        w.refresh(NOW + 2, &wrong),
        Err(ApiError::InvalidRefreshToken)
    );
    assert!(w.isolate.refreshing.borrow().is_empty());
    w.store.fail.set(true);
    assert_eq!(
        w.refresh(NOW + 3, &r2.refresh_token),
        Err(ApiError::Internal)
    );
    assert!(w.isolate.refreshing.borrow().is_empty());
    w.store.fail.set(false);
    assert_eq!(
        w.refresh(NOW + 100, &r.refresh_token),
        Err(ApiError::RefreshReused)
    );
    assert!(w.isolate.refreshing.borrow().is_empty());
}

#[test]
fn a_logout_while_a_phone_binding_waits_on_wechat_is_not_undone() {
    let (w, r) = code_world();
    let sid = sid_of(&r.refresh_token);
    let slow = SlowStore(&w.store);
    let edge = slow_edge(&w, &slow, NOW + 5);
    w.reply(STABLE_T1);
    w.reply(PHONE_REPLY);
    let auth = bearer_of(&r);
    let (bound, out) = block_on(async {
        futures_util::join!(
            edge.bind_phone(Some(&auth), PhoneRequest::Code("c1")),
            edge.logout(Some(&auth))
        )
    });
    assert_eq!(out, Ok(()));
    assert_eq!(bound.map(|_| ()), Err(ApiError::SessionRevoked));
    assert!(
        w.session(&sid).is_none(),
        "the logged-out session came back"
    );
}

#[test]
fn logout_accepts_a_just_expired_token_but_not_an_old_one() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let auth = bearer_of(&r);
    // Expired for less than one more access-token lifetime: fine.
    assert_eq!(block_on(w.at(NOW + 600 + 599).logout(Some(&auth))), Ok(()));
    let r = w.login_at(NOW, GOOD);
    let auth = bearer_of(&r);
    assert_eq!(
        block_on(w.at(NOW + 600 + 601).logout(Some(&auth))),
        Err(ApiError::TokenExpired)
    );
    assert!(w.session(&sid_of(&r.refresh_token)).is_some());
}
