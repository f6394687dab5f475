//! Faults, injected one call at a time (issue 16): for each flow a client
//! drives, the I/O calls of a clean run are counted; then the flow is run
//! again once per call N and fault kind with call N failing (an error,
//! never answering, or — for a storage write — the authority restarting
//! right after it), the client doing what the client library does (once
//! more after a 503; a new login after a failed one). Then the faults
//! clear, the authority's alarm runs (draining whatever it keeps to
//! finish), and in every `SESSION_CHECK` mode:
//! - no revoked session is accepted (its refresh token never refreshes;
//!   its access token is refused where the mode checks sessions —
//!   `refresh-only` trusts an access token until it expires, by design);
//! - no live session is lost (its access token passes, its refresh token
//!   refreshes, past the refresh grace);
//! - never two rotations of one token;
//! - never a false `refresh_reused`;
//! - the worker answers every request, and the user can log in afterwards
//!   (a call that hangs for good is reported, never waited out).
//!
//! The wrappers and the authority they run are in `testkit::faults`.
//! Time is virtual (see `testkit::faults`).

use std::cell::RefCell;
use std::collections::{BTreeSet, HashSet};
use std::future::Future;

use super::*;
use crate::authority::machine::UserState;
use crate::authority::CALL_TIMEOUT_MS;
use crate::testkit::faults::{
    within, Fault, Faults, FaultyAuthority, FaultyStore, FaultyTransport, Op, Port, VirtualTimer,
};
use crate::testkit::YieldOnce;
use crate::time::{Timed, KV_TIMEOUT_MS};
use crate::wechat::{Transport, TransportError, WireRequest, WireResponse};

/// How long a client waits for an answer before giving up (virtual ms).
const CLIENT_WAIT_MS: u32 = 30_000;
/// When the flow under test runs (its retry a second later).
const ACT: i64 = NOW + 20;
/// When the client comes back: past the refresh grace.
const CHECK: i64 = ACT + REFRESH_GRACE + 30;
/// How many times the authority's alarm runs before the client is back.
const DRAINS: usize = 4;
const USER: &str = "oUser1";

/// The faulty doubles as the [`Edge`]'s ports.
struct Faulted;

impl Platform for Faulted {
    /// The worker's KV, every call timed out as the shell's is.
    type Store = Timed<Rc<FaultyStore<MemoryStore>>, VirtualTimer>;
    type WeChat = FaultyTransport<Answering>;
    type Rng = SeededRandom;
    type Authority = FaultyAuthority;
    type Limits = MemoryLimiter;
    type Signer = Compact;
}

/// WeChat as the flows need it, answering every call: code2Session with
/// `login_reply`, `stable_token` with a token, and each phone code once
/// (a phone code is single use: WeChat refuses it the second time).
struct Answering {
    login_reply: String,
    used_codes: RefCell<HashSet<String>>,
}

impl Transport for Answering {
    async fn send(&self, req: WireRequest) -> Result<WireResponse, TransportError> {
        YieldOnce(false).await;
        let path = req.url.split('?').next().unwrap_or_default();
        if path.ends_with("/sns/jscode2session") {
            return ok(&self.login_reply).map(Into::into);
        }
        if path.ends_with("/cgi-bin/stable_token") {
            return ok(STABLE_T1).map(Into::into);
        }
        if path.ends_with("/wxa/business/getuserphonenumber") {
            let body: Value =
                serde_json::from_slice(req.body.as_deref().unwrap_or(b"{}")).expect("a JSON body");
            let code = body["code"].as_str().unwrap_or_default().to_string();
            if !self.used_codes.borrow_mut().insert(code) {
                return ok(&errcode(40029)).map(Into::into);
            }
            return ok(PHONE_REPLY).map(Into::into);
        }
        Err(TransportError::Network)
    }
    async fn pause(&self, _ms: u32) {
        YieldOnce(false).await;
    }
}

/// One deployment with faults.
struct Rig {
    cfg: Rc<Config>,
    mem: Rc<MemoryStore>,
    /// KV as the worker uses it (the authority's is the same, untimed):
    /// every call times out.
    worker_kv: Timed<Rc<FaultyStore<MemoryStore>>, VirtualTimer>,
    faults: Rc<Faults>,
    wx: FaultyTransport<Answering>,
    rng: SeededRandom,
    isolate: IsolateState,
    authority: FaultyAuthority,
    limits: MemoryLimiter,
}

impl Rig {
    fn new(mode: SessionCheck, login_reply: String) -> Self {
        let mut cfg = test_config();
        cfg.session_check = mode;
        cfg.admin_token = Some(crate::secret::AdminToken::new(ADMIN));
        let cfg = Rc::new(cfg);
        let mem = Rc::new(MemoryStore::default());
        let faults = Rc::new(Faults::default());
        let kv = Rc::new(FaultyStore {
            inner: Rc::clone(&mem),
            faults: Rc::clone(&faults),
        });
        let worker_kv = Timed {
            kv: Rc::clone(&kv),
            timer: VirtualTimer,
            ms: KV_TIMEOUT_MS,
        };
        Rig {
            worker_kv,
            authority: FaultyAuthority::new(Rc::clone(&kv), Rc::clone(&cfg)),
            wx: FaultyTransport {
                inner: Answering {
                    login_reply,
                    used_codes: RefCell::default(),
                },
                faults: Rc::clone(&faults),
                timeout_ms: u32::try_from(cfg.wechat_timeout_ms).expect("a small timeout"),
            },
            cfg,
            mem,
            faults,
            rng: SeededRandom::default(),
            isolate: IsolateState::default(),
            limits: MemoryLimiter::default(),
        }
    }

    fn at(&self, now: i64) -> Edge<'_, Faulted> {
        self.mem.now.set(now);
        Edge {
            cfg: &self.cfg,
            store: &self.worker_kv,
            wechat: &self.wx,
            rng: &self.rng,
            isolate: &self.isolate,
            authority: &self.authority,
            limits: &self.limits,
            now,
            ed25519: &Compact,
        }
    }

    fn login(&self, now: i64) -> Answer<TokenResponse> {
        ask(self.at(now).login("0a1LoginCode", Some(IP)))
    }

    fn state(&self) -> UserState {
        let storage = self.authority.storage(&OpenId::new(USER));
        let text = storage.text.borrow().clone();
        text.map(|t| serde_json::from_str(&t).expect("saved state parses"))
            .unwrap_or_default()
    }

    fn session(&self, sid: &SessionId) -> Option<SessionState> {
        self.state().sessions.get(sid).cloned()
    }

    /// Every refresh hash the session has had (current, previous, retired).
    fn chain(&self, sid: &SessionId) -> BTreeSet<String> {
        let Some(s) = self.session(sid) else {
            return BTreeSet::new();
        };
        let show = |h: &RefreshHash| serde_json::to_string(h).expect("serializes");
        s.retired
            .iter()
            .chain(s.prev_hash.iter())
            .chain([&s.refresh_hash])
            .map(show)
            .collect()
    }
}

/// What a client got: an answer, or none within [`CLIENT_WAIT_MS`].
type Answer<T> = Option<Result<T, ApiError>>;

/// One request as a client sends it.
fn ask<T>(request: impl Future<Output = Result<T, ApiError>>) -> Answer<T> {
    block_on(within(CLIENT_WAIT_MS, request))
}

/// An answer in words, for a broken promise's line.
fn said<T>(a: Option<&Result<T, ApiError>>) -> String {
    match a {
        None => "no answer".into(),
        Some(Ok(_)) => "ok".into(),
        Some(Err(e)) => format!("{e:?}"),
    }
}

/// The pair a client holds for one session.
#[derive(Debug, Clone)]
struct Held {
    access: String,
    refresh: String,
}

impl Held {
    fn of(r: &TokenResponse) -> Self {
        Held {
            access: r.access_token.clone(),
            refresh: r.refresh_token.clone(),
        }
    }
    fn bearer(&self) -> String {
        format!("Bearer {}", self.access)
    }
    fn sid(&self) -> SessionId {
        sid_of(&self.refresh)
    }
}

/// The flows under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Login,
    Refresh,
    Logout,
    BindCode,
    BindLegacy,
    OperatorRevoke,
    ReuseDetection,
    /// `POST /auth/session/rekey`: the session's key replaced.
    Rekey,
    /// The service decrypt's fifth failure, which revokes the session.
    DecryptLockout,
}

/// `v`, a JSON object, as a parsed body.
fn object(v: Value) -> serde_json::Map<String, Value> {
    let Value::Object(map) = v else {
        unreachable!("an object")
    };
    map
}

/// Open data no key opens, for the service decrypt of [`USER`].
async fn garbage<P: Platform>(edge: &Edge<'_, P>) -> Result<(), ApiError> {
    let body = object(json!({
        "encryptedData": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "iv": "AAAAAAAAAAAAAAAAAAAAAA==",
    }));
    edge.service_decrypt(&OpenId::new(USER), &body)
        .await
        .map(|_| ())
}

/// What became of one flow's run, for the checks.
#[derive(Default)]
struct Outcome {
    /// The sessions the flow is about, as the client now holds them.
    held: Vec<Held>,
    /// The flow ends them (logout, revoke, reuse)...
    ends: bool,
    /// ...and it answered success.
    succeeded: bool,
    /// Hashes of each session before the flow ran.
    chains: Vec<(SessionId, BTreeSet<String>)>,
    /// Broken promises seen while it ran.
    broken: Vec<String>,
}

impl Outcome {
    /// Notes an answer the client got: a request that never answered, or
    /// a `refresh_reused` where no token was reused.
    fn saw<T>(&mut self, what: &str, a: Option<&Result<T, ApiError>>, reuse_expected: bool) {
        match a {
            None => self
                .broken
                .push(format!("{what}: the worker never answered")),
            Some(Err(ApiError::RefreshReused)) if !reuse_expected => {
                self.broken.push(format!("{what}: a false refresh_reused"));
            }
            _ => {}
        }
    }
}

/// What the client library does: the request; once more after a 503.
fn with_retry<T>(
    out: &mut Outcome,
    what: &str,
    reuse_expected: bool,
    mut send: impl FnMut(i64) -> Answer<T>,
) -> Option<T> {
    let first = send(ACT);
    out.saw(what, first.as_ref(), reuse_expected);
    let answer = match first {
        Some(Err(e)) if e.status() == 503 => {
            let again = send(ACT + 1);
            out.saw(&format!("{what} (retried)"), again.as_ref(), reuse_expected);
            again
        }
        other => other,
    };
    answer.and_then(Result::ok)
}

impl Flow {
    const ALL: [Flow; 9] = [
        Flow::Login,
        Flow::Refresh,
        Flow::Logout,
        Flow::BindCode,
        Flow::BindLegacy,
        Flow::OperatorRevoke,
        Flow::ReuseDetection,
        Flow::Rekey,
        Flow::DecryptLockout,
    ];

    fn login_reply(self) -> String {
        match self {
            Flow::BindLegacy => phone_login_reply(),
            _ => GOOD.to_string(),
        }
    }

    /// The sessions the client holds before the flow (made without faults).
    fn setup(self, rig: &Rig) -> Vec<Held> {
        let login = |now| {
            rig.login(now)
                .expect("answers")
                .map(|r| Held::of(&r))
                .expect("setup login")
        };
        match self {
            Flow::Login => vec![],
            Flow::OperatorRevoke => vec![login(NOW), login(NOW + 1)],
            Flow::ReuseDetection => {
                let r0 = login(NOW);
                let r1 = ask(rig.at(NOW + 1).refresh(&r0.refresh, Some(IP)))
                    .expect("answers")
                    .expect("setup refresh");
                vec![Held::of(&r1), r0]
            }
            Flow::DecryptLockout => {
                let r0 = login(NOW);
                let edge = rig.at(NOW + 1);
                for _ in 1..crate::authority::machine::MAX_FAILED_DECRYPTS {
                    let a = ask(garbage(&edge)).expect("answers");
                    assert_eq!(a, Err(ApiError::DecryptFailed), "setup failure");
                }
                vec![r0]
            }
            _ => vec![login(NOW)],
        }
    }

    /// Runs the flow as the client would, with the faults armed.
    fn act(self, rig: &Rig, before: Vec<Held>) -> Outcome {
        let mut out = Outcome {
            chains: before
                .iter()
                .map(|h| (h.sid(), rig.chain(&h.sid())))
                .collect(),
            ..Outcome::default()
        };
        let admin = format!("Bearer {ADMIN}");
        match self {
            Flow::Login => {
                // A failed login is followed by a new login (a new code).
                let mut got = None;
                for now in [ACT, ACT + 1] {
                    let a = rig.login(now);
                    out.saw("login", a.as_ref(), false);
                    if let Some(Ok(r)) = a {
                        got = Some(r);
                        break;
                    }
                }
                out.succeeded = got.is_some();
                out.held = got.iter().map(Held::of).collect();
            }
            Flow::Refresh => {
                let r0 = &before[0];
                let got = with_retry(&mut out, "refresh", false, |now| {
                    ask(rig.at(now).refresh(&r0.refresh, Some(IP)))
                });
                out.succeeded = got.is_some();
                out.held = vec![got.as_ref().map_or_else(|| r0.clone(), Held::of)];
            }
            Flow::BindCode | Flow::BindLegacy => {
                let r0 = &before[0];
                let got = with_retry(&mut out, "bind", false, |now| {
                    let req = match self {
                        Flow::BindCode => PhoneRequest::Code("0a1PhoneCode"),
                        _ => PhoneRequest::Encrypted(encrypted("phone_ok")),
                    };
                    ask(rig.at(now).bind_phone(Some(&r0.bearer()), req))
                });
                out.succeeded = got.is_some();
                out.held = vec![got
                    .as_ref()
                    .map_or_else(|| r0.clone(), |b| held_after_bind(r0, b))];
            }
            Flow::Logout => {
                let r0 = &before[0];
                let got = with_retry(&mut out, "logout", false, |now| {
                    ask(rig.at(now).logout(Some(&r0.bearer())))
                });
                out.ends = true;
                out.succeeded = got.is_some();
                out.held = before;
            }
            Flow::OperatorRevoke => {
                let got = with_retry(&mut out, "operator revoke", false, |now| {
                    ask(rig.at(now).admin_revoke(Some(&admin), None, USER))
                });
                out.ends = true;
                out.succeeded = got.is_some();
                out.held = before;
            }
            Flow::ReuseDetection => {
                // The thief presents the rotated-away token past the grace.
                let stolen = &before[1];
                let a = ask(rig.at(ACT).refresh(&stolen.refresh, None));
                out.saw("stolen refresh", a.as_ref(), true);
                let again = match a {
                    Some(Err(e)) if e.status() == 503 => {
                        let again = ask(rig.at(ACT + 1).refresh(&stolen.refresh, None));
                        out.saw("stolen refresh (retried)", again.as_ref(), true);
                        again
                    }
                    other => other,
                };
                if let Some(Ok(_)) = again {
                    out.broken
                        .push("the stolen, rotated-away token refreshed".to_string());
                }
                out.ends = true;
                out.succeeded = matches!(again, Some(Err(ApiError::RefreshReused)));
                out.held = vec![before[0].clone()];
            }
            Flow::Rekey => {
                let r0 = &before[0];
                let code = object(json!({"code": "0a1RekeyCode"}));
                let got = with_retry(&mut out, "rekey", false, |now| {
                    ask(rig.at(now).rekey(Some(&r0.bearer()), Some(IP), &code))
                });
                out.succeeded = got.is_some();
                out.held = before;
            }
            Flow::DecryptLockout => {
                decrypt_lockout(rig, &mut out);
                out.held = before;
            }
        }
        out
    }
}

/// The service decrypt's fifth failure, as the origin sends it: once
/// more after a 503. It answers `decrypt_failed` and revokes the session
/// (a retry finds no live session left, or counts the fifth itself).
fn decrypt_lockout(rig: &Rig, out: &mut Outcome) {
    let a = ask(garbage(&rig.at(ACT)));
    out.saw("decrypt", a.as_ref(), false);
    let again = match a {
        Some(Err(e)) if e.status() == 503 => {
            let again = ask(garbage(&rig.at(ACT + 1)));
            out.saw("decrypt (retried)", again.as_ref(), false);
            again
        }
        other => other,
    };
    if let Some(Ok(())) = again {
        out.broken.push("garbage opened".to_string());
    }
    out.ends = true;
    out.succeeded = matches!(again, Some(Err(ApiError::DecryptFailed)));
}

/// What the client holds after a successful bind: binding does not rotate,
/// so the answer has no refresh token and the client keeps `before`'s,
/// with the bind's access token (as the client library does).
fn held_after_bind(before: &Held, bound: &PhoneResponse) -> Held {
    Held {
        access: bound.access_token.clone(),
        refresh: before.refresh.clone(),
    }
}

/// One scenario: `flow` in `mode` with `plan`; the promises it broke.
fn run(flow: Flow, mode: SessionCheck, plan: Option<(usize, Fault)>) -> (Vec<String>, Vec<Op>) {
    let rig = Rig::new(mode, flow.login_reply());
    let before = flow.setup(&rig);
    rig.faults.arm(plan);
    let mut out = flow.act(&rig, before);
    rig.faults.clear();
    let trace = rig.faults.trace();

    // Faults clear; whatever the authority still runs gets its time, and
    // its alarm runs when it asked to be woken (the outbox drains), as
    // long as that is before the client comes back.
    let user = OpenId::new(USER);
    block_on(rig.authority.settle(2 * CALL_TIMEOUT_MS));
    for _ in 0..DRAINS {
        let asked = rig.authority.storage(&user).alarm_ms.get();
        let at = asked.map_or(ACT + 2, |ms| (ms + 999).div_euclid(1000));
        let at = at.clamp(ACT + 2, CHECK - 1);
        rig.mem.now.set(at);
        // An alarm that fails or never finishes is retried; what it left
        // undone shows in the checks.
        let _ = block_on(rig.authority.alarm(&user, at));
    }
    block_on(rig.authority.settle(2 * CALL_TIMEOUT_MS));

    // Never two rotations of one token.
    for (sid, chain) in &out.chains {
        let new = rig.chain(sid).difference(chain).count();
        if new > 1 {
            out.broken.push(format!("{new} rotations of one token"));
        }
    }

    // Then the client comes back, past the grace.
    for h in &out.held {
        let revoked = rig
            .session(&h.sid())
            .is_some_and(|s| s.revoked_at.is_some());
        if out.ends && (out.succeeded || revoked) {
            check_dead(&rig, mode, h, &mut out.broken);
        } else {
            check_live(&rig, mode, h, &mut out.broken);
        }
    }
    // The user is not locked out.
    match rig.login(CHECK + 10) {
        Some(Ok(r)) => check_live(&rig, mode, &Held::of(&r), &mut out.broken),
        Some(Err(e)) => out.broken.push(format!("a new login afterwards: {e:?}")),
        None => out
            .broken
            .push("a new login afterwards never answered".into()),
    }
    (out.broken, trace)
}

fn check_dead(rig: &Rig, mode: SessionCheck, h: &Held, broken: &mut Vec<String>) {
    if mode != SessionCheck::RefreshOnly {
        if let Some(Ok(_)) = ask(rig.at(CHECK).authenticate(Some(&h.bearer()), mode)) {
            broken.push("a revoked session's access token was accepted".into());
        }
    }
    if let Some(Ok(_)) = ask(rig.at(CHECK).refresh(&h.refresh, Some(IP))) {
        broken.push("a revoked session's refresh token refreshed".into());
    }
}

fn check_live(rig: &Rig, mode: SessionCheck, h: &Held, broken: &mut Vec<String>) {
    match ask(rig.at(CHECK).authenticate(Some(&h.bearer()), mode)) {
        Some(Ok(_)) => {}
        other => broken.push(format!(
            "a live session was lost: its access token: {}",
            said(other.as_ref())
        )),
    }
    match ask(rig.at(CHECK).refresh(&h.refresh, Some(IP))) {
        Some(Ok(next)) => {
            let a = ask(rig.at(CHECK).authenticate(Some(&bearer_of(&next)), mode));
            if !matches!(a, Some(Ok(_))) {
                broken.push("a live session was lost: its refreshed access token".into());
            }
        }
        Some(Err(ApiError::RefreshReused)) => {
            broken.push("a live session was lost: a false refresh_reused".into());
        }
        other => broken.push(format!(
            "a live session was lost: its refresh: {}",
            said(other.as_ref())
        )),
    }
}

const MODES: [SessionCheck; 3] = [
    SessionCheck::RefreshOnly,
    SessionCheck::EveryRequest,
    SessionCheck::Authority,
];

/// Every call N of `flow`'s clean run on `port` gets `fault`, in every
/// mode; none may break a promise.
fn assert_holds(flow: Flow, port: Port, fault: Fault) {
    let mut tried = 0;
    let mut found = Vec::new();
    for mode in MODES {
        let (clean, trace) = run(flow, mode, None);
        assert!(
            clean.is_empty(),
            "{flow:?} {mode:?} without faults: {clean:?}"
        );
        for (i, op) in trace.iter().enumerate() {
            if !applies(*op, port, fault) {
                continue;
            }
            tried += 1;
            let n = i + 1;
            for b in run(flow, mode, Some((n, fault))).0 {
                found.push(format!("{mode:?}, call {n} ({op:?}): {b}"));
            }
        }
    }
    assert!(tried > 0, "{flow:?} makes no {port:?} call to fail");
    assert!(
        found.is_empty(),
        "{flow:?} with a {port:?} {fault:?}:\n{}",
        found.join("\n")
    );
}

/// Whether `fault` is one `op` can have (a restart follows a storage
/// write).
fn applies(op: Op, port: Port, fault: Fault) -> bool {
    op.port() == port && (fault != Fault::Restart || op == Op::Save)
}

/// One test per row: flow, port, fault. Every row holds (a row may carry
/// an attribute, e.g. `#[ignore]` with its reason, should one ever need
/// to wait for a fix).
macro_rules! table {
    ($($(#[$attr:meta])* $name:ident: $flow:ident, $port:ident, $fault:ident;)*) => {
        /// Every row of the table.
        const ROWS: &[(Flow, Port, Fault)] = &[$((Flow::$flow, Port::$port, Fault::$fault)),*];
        $(
            #[test]
            $(#[$attr])*
            fn $name() {
                assert_holds(Flow::$flow, Port::$port, Fault::$fault);
            }
        )*
    };
}

table! {
    login_kv_error: Login, Kv, Error;
    login_kv_hang: Login, Kv, Hang;
    login_storage_error: Login, Storage, Error;
    login_storage_hang: Login, Storage, Hang;
    login_storage_restart: Login, Storage, Restart;
    login_wechat_error: Login, WeChat, Error;
    login_wechat_hang: Login, WeChat, Hang;

    refresh_kv_error: Refresh, Kv, Error;
    refresh_kv_hang: Refresh, Kv, Hang;
    refresh_storage_error: Refresh, Storage, Error;
    refresh_storage_hang: Refresh, Storage, Hang;
    refresh_storage_restart: Refresh, Storage, Restart;

    logout_kv_error: Logout, Kv, Error;
    logout_kv_hang: Logout, Kv, Hang;
    logout_storage_error: Logout, Storage, Error;
    logout_storage_hang: Logout, Storage, Hang;
    logout_storage_restart: Logout, Storage, Restart;

    bind_code_kv_error: BindCode, Kv, Error;
    bind_code_kv_hang: BindCode, Kv, Hang;
    bind_code_storage_error: BindCode, Storage, Error;
    bind_code_storage_hang: BindCode, Storage, Hang;
    bind_code_storage_restart: BindCode, Storage, Restart;
    bind_code_wechat_error: BindCode, WeChat, Error;
    bind_code_wechat_hang: BindCode, WeChat, Hang;

    bind_legacy_kv_error: BindLegacy, Kv, Error;
    bind_legacy_kv_hang: BindLegacy, Kv, Hang;
    bind_legacy_storage_error: BindLegacy, Storage, Error;
    bind_legacy_storage_hang: BindLegacy, Storage, Hang;
    bind_legacy_storage_restart: BindLegacy, Storage, Restart;

    operator_revoke_kv_error: OperatorRevoke, Kv, Error;
    operator_revoke_kv_hang: OperatorRevoke, Kv, Hang;
    operator_revoke_storage_error: OperatorRevoke, Storage, Error;
    operator_revoke_storage_hang: OperatorRevoke, Storage, Hang;
    operator_revoke_storage_restart: OperatorRevoke, Storage, Restart;

    reuse_kv_error: ReuseDetection, Kv, Error;
    reuse_kv_hang: ReuseDetection, Kv, Hang;
    reuse_storage_error: ReuseDetection, Storage, Error;
    reuse_storage_hang: ReuseDetection, Storage, Hang;
    reuse_storage_restart: ReuseDetection, Storage, Restart;

    rekey_storage_error: Rekey, Storage, Error;
    rekey_storage_hang: Rekey, Storage, Hang;
    rekey_storage_restart: Rekey, Storage, Restart;
    rekey_wechat_error: Rekey, WeChat, Error;
    rekey_wechat_hang: Rekey, WeChat, Hang;

    decrypt_lockout_kv_error: DecryptLockout, Kv, Error;
    decrypt_lockout_kv_hang: DecryptLockout, Kv, Hang;
    decrypt_lockout_storage_error: DecryptLockout, Storage, Error;
    decrypt_lockout_storage_hang: DecryptLockout, Storage, Hang;
    decrypt_lockout_storage_restart: DecryptLockout, Storage, Restart;
}

/// The table has a row for every port each flow calls and every fault
/// that port can have, and each flow's clean run keeps every promise.
#[test]
fn the_table_covers_every_call_of_every_flow() {
    for flow in Flow::ALL {
        for mode in MODES {
            let (clean, trace) = run(flow, mode, None);
            assert!(clean.is_empty(), "{flow:?} {mode:?}: {clean:?}");
            for op in trace {
                for fault in [Fault::Error, Fault::Hang, Fault::Restart] {
                    if applies(op, op.port(), fault) {
                        assert!(
                            ROWS.contains(&(flow, op.port(), fault)),
                            "no row for {flow:?} {op:?} {fault:?}"
                        );
                    }
                }
            }
        }
    }
}

/// The restart itself: the storage write stays, the worker's call fails
/// (503), and the restarted authority serves the next request.
#[test]
fn a_restart_keeps_the_storage_write_and_fails_the_call() {
    let rig = Rig::new(SessionCheck::Authority, GOOD.into());
    let held = Flow::Logout.setup(&rig).remove(0);
    // Logout: load, save (then the restart), KV delete.
    rig.faults.arm(Some((2, Fault::Restart)));
    let out = ask(rig.at(ACT).logout(Some(&held.bearer())));
    rig.faults.clear();
    assert_eq!(out, Some(Err(ApiError::StoreUnavailable)));
    assert_eq!(rig.faults.trace(), vec![Op::Load, Op::Save]);
    assert_eq!(rig.authority.restarts.get(), 1);
    let s = rig.session(&held.sid()).expect("kept");
    assert!(s.revoked_at.is_some(), "the write before the restart stays");
    let again = ask(rig.at(ACT + 1).refresh(&held.refresh, Some(IP)));
    assert!(
        matches!(again, Some(Err(ref e)) if e.status() != 503),
        "served after the restart: {}",
        said(again.as_ref())
    );
}
