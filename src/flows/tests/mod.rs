//! Behaviour tests of the login flows over the testkit's doubles: an
//! in-memory KV, a scripted WeChat and seeded randomness, so every run is
//! the same. Time is whatever each test says: an [`Edge`] is built per
//! "request" with its own `now`, and the store's clock follows it (see
//! [`World::at`]).

use std::rc::Rc;

use super::session::SessionInfo;
use super::*;
use crate::authority::machine::{SessionState, UserRecord, RETIRED_KEPT};
use crate::authority::server::REFRESH_GRACE;
use crate::authority::Replica;
use crate::config::Config;
use crate::config::SessionCheck;
use crate::error::ApiError;
use crate::http::body::PhoneRequest;
use crate::http::headers::Identity;
use crate::ids::{AppId, OpenId, SessionId, Subject};
use crate::limits::Limit;
use crate::phone::Phone;
use crate::secret::RefreshHash;
use crate::store::{allow_key, get_json, replica_key, WX_TOKEN_KEY};
use crate::token::access::{verify_access, AccessClaims};
use crate::token::identity::{Compact, IdentityClaims};
use crate::token::refresh::{NewRefresh, ParsedRefresh, RefreshKey};
use crate::wechat::access_token::{CachedWxToken, WX_TOKEN_EARLY};
use crate::wechat::open_data::EncryptedPhone;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use pollster::block_on;
use serde_json::{json, Value};

use crate::random::RandomError;
use crate::testkit::{
    ok, test_config, MemoryAuthority, MemoryLimiter, MemoryStore, Scripted, SeededRandom, APPID,
    APP_SECRET, GOOD, GOOD_KEY,
};
use crate::wechat::Method;

const NOW: i64 = 1_764_000_000;
/// An operator token for the admin endpoints.
const ADMIN: &str = "test-only-admin-token-0123456789abcdef";
const IP: &str = "203.0.113.7";
const API: &str = "https://api.weixin.qq.com";

const STABLE_T1: &str = r#"{"access_token":"T1","expires_in":7200}"#;
const STABLE_T2: &str = r#"{"access_token":"T2","expires_in":7200}"#;
const PHONE_REPLY: &str = r#"{"errcode":0,"errmsg":"ok","phone_info":{"phoneNumber":"13800138000","purePhoneNumber":"13800138000","countryCode":"86","watermark":{"timestamp":1764000000,"appid":"wxd930ea5d5a258f4f"}}}"#;
const PHONE_REPLY_FOREIGN: &str = r#"{"errcode":0,"errmsg":"ok","phone_info":{"phoneNumber":"13800138000","purePhoneNumber":"13800138000","countryCode":"86","watermark":{"timestamp":1764000000,"appid":"wx0000000000000000"}}}"#;
const PURE: &str = "13800138000";

/// The tests' doubles as the [`Edge`]'s ports; randomness is seeded
/// unless a test brings its own (see [`World::with_rng`]).
struct Test<R = SeededRandom>(std::marker::PhantomData<R>);

impl<R: Random> Platform for Test<R> {
    type Store = MemoryStore;
    type WeChat = Scripted;
    type Rng = R;
    type Authority = MemoryAuthority;
    type Limits = MemoryLimiter;
    type Signer = Compact;
}

type TestEdge<'a> = Edge<'a, Test>;

/// One deployment: configuration, KV, WeChat, randomness and the users'
/// session authorities.
struct World {
    cfg: Rc<Config>,
    store: Rc<MemoryStore>,
    wx: Scripted,
    rng: SeededRandom,
    /// One isolate's shared state: every request of a test runs in it.
    isolate: IsolateState,
    authority: MemoryAuthority,
    limits: MemoryLimiter,
}

impl World {
    fn new() -> Self {
        Self::with(test_config())
    }

    fn with(cfg: Config) -> Self {
        let cfg = Rc::new(cfg);
        let store = Rc::new(MemoryStore::default());
        World {
            authority: MemoryAuthority::new(Rc::clone(&store), Rc::clone(&cfg)),
            cfg,
            store,
            wx: Scripted::default(),
            rng: SeededRandom::default(),
            isolate: IsolateState::default(),
            limits: MemoryLimiter::default(),
        }
    }

    /// A request handled at `now` (the KV's and the authorities' clock is
    /// set to it too).
    fn at(&self, now: i64) -> TestEdge<'_> {
        self.with_rng(now, &self.rng)
    }

    /// [`World::at`] with another source of randomness.
    fn with_rng<'a, R: Random>(&'a self, now: i64, rng: &'a R) -> Edge<'a, Test<R>> {
        self.store.now.set(now);
        Edge {
            cfg: &self.cfg,
            store: &self.store,
            wechat: &self.wx,
            rng,
            isolate: &self.isolate,
            authority: &self.authority,
            limits: &self.limits,
            now,
            ed25519: &Compact,
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
        block_on(self.at(now).refresh(token, Some(IP)))
    }

    fn bind(
        &self,
        now: i64,
        login: &impl Access,
        req: PhoneRequest<'_>,
    ) -> Result<PhoneResponse, ApiError> {
        block_on(self.at(now).bind_phone(Some(&bearer_of(login)), req))
    }

    fn authenticate_err(
        &self,
        now: i64,
        r: &TokenResponse,
        check: SessionCheck,
    ) -> Option<ApiError> {
        block_on(self.at(now).authenticate(Some(&bearer_of(r)), check)).err()
    }

    /// The session as its authority keeps it (revoked ones too, until they
    /// expire).
    fn session(&self, sid: &SessionId) -> Option<SessionState> {
        self.authority
            .states()
            .into_iter()
            .find_map(|(_, s)| s.sessions.get(sid).cloned())
    }

    /// Whether the session's authority holds it revoked.
    fn is_revoked(&self, sid: &SessionId) -> bool {
        self.session(sid).is_some_and(|s| s.revoked_at.is_some())
    }

    /// The session's KV replica at the store's current time.
    fn replica(&self, sid: &SessionId) -> Option<Replica> {
        block_on(get_json(&*self.store, &replica_key(sid))).expect("store readable")
    }

    fn user(&self, openid: &str) -> Option<UserRecord> {
        self.authority.state(&OpenId::new(openid))?.user
    }

    /// The raw KV entry (value, absolute expiry), ignoring expiry.
    fn raw_entry(&self, key: &str) -> Option<(String, Option<i64>)> {
        self.store.data.borrow().get(key).cloned()
    }

    /// Puts a mainland (+86) number on the allowlist.
    fn allow(&self, pure: &str) {
        let phone = Phone::for_tests(pure, pure, "86");
        block_on(self.store.put(&allow_key(&phone), "1", None)).expect("put");
    }

    fn sent_len(&self) -> usize {
        self.wx.sent.borrow().len()
    }

    fn sent_url(&self, i: usize) -> String {
        self.wx.sent.borrow()[i].url.clone()
    }

    fn sent_method(&self, i: usize) -> Method {
        let sent = self.wx.sent.borrow();
        [Method::Get, Method::Post]
            .into_iter()
            .find(|m| m.as_str() == sent[i].method)
            .expect("an API call is a GET or a POST")
    }

    fn sent_body(&self, i: usize) -> Value {
        let sent = self.wx.sent.borrow();
        let body = sent[i].body.as_deref().expect("request has a body");
        serde_json::from_slice(body).expect("request body is JSON")
    }

    /// The `X-WX-Identity` a proxied request of `r`'s session gets at
    /// `now` on `path` (identified, then asserted, as the shell does).
    fn assertion_on(&self, now: i64, r: &TokenResponse, path: &str) -> String {
        block_on(self.at(now).proxy_pass(path, Some(&bearer_of(r))))
            .expect("passes")
            .expect("identified")
            .assertion
            .expect("key configured")
    }

    fn assertion(&self, now: i64, r: &TokenResponse) -> String {
        self.assertion_on(now, r, "/api/x")
    }

    fn claims(&self, access_token: &str, now: i64) -> AccessClaims {
        verify_access(
            &self.cfg.token_key,
            self.cfg.appid.as_str(),
            access_token,
            now,
        )
        .expect("access token verifies")
        .claims
    }
}

/// An answer that carries an access token for a user: a pair, or a phone
/// binding's.
trait Access {
    fn access_token(&self) -> &str;
    fn openid(&self) -> &str;
    fn unionid(&self) -> Option<&UnionId>;
}

impl Access for TokenResponse {
    fn access_token(&self) -> &str {
        &self.access_token
    }
    fn openid(&self) -> &str {
        &self.openid
    }
    fn unionid(&self) -> Option<&UnionId> {
        self.unionid.as_ref()
    }
}

impl Access for PhoneResponse {
    fn access_token(&self) -> &str {
        &self.access_token
    }
    fn openid(&self) -> &str {
        &self.openid
    }
    fn unionid(&self) -> Option<&UnionId> {
        self.unionid.as_ref()
    }
}

fn bearer_of(r: &impl Access) -> String {
    format!("Bearer {}", r.access_token())
}

/// The refresh-token key of [`test_config`].
fn refresh_key() -> RefreshKey {
    RefreshKey::new(crate::testkit::config::TEST_REFRESH_SECRET).expect("strong")
}

fn parsed(refresh_token: &str) -> Option<ParsedRefresh> {
    ParsedRefresh::parse(&refresh_key(), refresh_token)
}

fn sid_of(refresh_token: &str) -> SessionId {
    parsed(refresh_token)
        .expect("refresh token is user.sid.secret.tag")
        .sid
}

fn hash_of(refresh_token: &str) -> RefreshHash {
    parsed(refresh_token).expect("refresh token parses").hash()
}

fn jwt_part(token: &str, i: usize) -> Value {
    let part = token.split('.').nth(i).expect("JWT part");
    serde_json::from_slice(&B64URL.decode(part).expect("base64url")).expect("JSON")
}

fn vectors() -> Value {
    serde_json::from_str(include_str!("../../../tests/fixtures/wechat-vectors.json"))
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

fn expected_phone() -> Phone {
    Phone::for_tests(PURE, PURE, "86")
}

fn public_world() -> World {
    let mut cfg = test_config();
    cfg.public_paths = vec!["/public/".into()];
    World::with(cfg)
}

fn identity_of(r: &impl Access, phone: Option<&str>) -> Identity {
    Identity {
        subject: Subject {
            openid: OpenId::new(r.openid()),
            unionid: r.unionid().cloned(),
            phone: phone.map(|p| Phone::for_tests(p, p, "86")),
        },
        appid: AppId::new(APPID),
    }
}

fn code_world() -> (World, TokenResponse) {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    (w, r)
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
fn cached_wx_token(w: &World) -> Option<CachedWxToken> {
    block_on(get_json(&*w.store, WX_TOKEN_KEY)).expect("store readable")
}

/// The identity key as an origin finds it: from the published JWKS.
fn published_key(key: &crate::token::identity::IdentityKey) -> ed25519_compact::PublicKey {
    let jwks: Value = serde_json::from_str(
        &block_on(crate::token::identity::jwks(&[key], &Compact)).expect("JWKS"),
    )
    .expect("JWKS is JSON");
    let x = B64URL
        .decode(jwks["keys"][0]["x"].as_str().expect("x"))
        .expect("base64url");
    ed25519_compact::PublicKey::from_slice(&x).expect("an Ed25519 key")
}

mod admin;
mod concurrency;
mod failures;
mod faults;
mod limits;
mod login;
mod phone;
mod proxy;
mod refresh;
mod rekey;
mod relay;
mod serve;
mod service;
mod service_keys;
mod session;
