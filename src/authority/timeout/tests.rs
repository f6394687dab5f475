//! The KV timeout: a call that answers in time is its answer, one that
//! never answers is a [`StoreError`] once the timer runs out, and an
//! authority whose replica write never answers answers 503 with the change
//! it saved kept.

use std::cell::{Cell, RefCell};

use pollster::block_on;

use super::*;
use crate::authority::machine::UserState;
use crate::authority::protocol::{Envelope, Login, Logout, Request};
use crate::authority::queue::Serial;
use crate::authority::server::{Answered, Pacing, Server};
use crate::ids::{OpenId, SessionId};
use crate::secret::{RefreshHash, SessionKey};
use crate::store::{replica_key, Store, StoreError};
use crate::testkit::{test_config, MemoryState, MemoryStore, YieldOnce, YieldTimer};

/// A timer that fires after one yield or never, and hears what it gave
/// up on.
struct Scripted {
    fires: bool,
    gave_up: RefCell<Vec<u32>>,
}

impl Scripted {
    fn new(fires: bool) -> Self {
        Scripted {
            fires,
            gave_up: RefCell::default(),
        }
    }
}

impl Timer for Scripted {
    async fn sleep(&self, _ms: u32) {
        if self.fires {
            YieldOnce(false).await;
        } else {
            std::future::pending::<()>().await;
        }
    }
    fn now_ms(&self) -> i64 {
        0
    }
    fn gave_up(&self, ms: u32) {
        self.gave_up.borrow_mut().push(ms);
    }
}

#[test]
fn an_answer_in_time_is_the_answer() {
    let timer = Scripted::new(true);
    let ready = async { Ok::<_, StoreError>(7) };
    assert_eq!(block_on(with_timeout(&timer, 10, ready)), Ok(7));
    let failed = async { Err::<u8, _>(StoreError) };
    assert_eq!(block_on(with_timeout(&timer, 10, failed)), Err(StoreError));
    assert!(timer.gave_up.borrow().is_empty());
    // A timer that never fires changes nothing.
    let timer = Scripted::new(false);
    let slow = async {
        YieldOnce(false).await;
        Ok::<_, StoreError>(8)
    };
    assert_eq!(block_on(with_timeout(&timer, 10, slow)), Ok(8));
}

#[test]
fn a_call_that_never_answers_is_a_store_error() {
    let timer = Scripted::new(true);
    let never = std::future::pending::<Result<u8, StoreError>>();
    assert_eq!(block_on(with_timeout(&timer, 10, never)), Err(StoreError));
    assert_eq!(*timer.gave_up.borrow(), vec![10]);
}

/// A KV whose calls answer after a yield, or, once `stuck`, never.
#[derive(Default)]
struct Stuck {
    kv: MemoryStore,
    stuck: Cell<bool>,
}

impl Stuck {
    async fn answers(&self) {
        if self.stuck.get() {
            std::future::pending::<()>().await;
        }
    }
}

impl Store for Stuck {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.answers().await;
        self.kv.get(key).await
    }
    async fn put(&self, key: &str, value: &str, ttl: Option<u64>) -> Result<(), StoreError> {
        self.answers().await;
        self.kv.put(key, value, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.answers().await;
        self.kv.delete(key).await
    }
}

#[test]
fn every_call_of_a_timed_store_times_out() {
    let stuck = Stuck::default();
    let timer = Scripted::new(true);
    let timed = Timed {
        kv: &stuck,
        timer: &timer,
        ms: KV_TIMEOUT_MS,
    };
    assert_eq!(block_on(timed.put("k", "v", None)), Ok(()));
    assert_eq!(block_on(timed.get("k")), Ok(Some("v".into())));
    stuck.stuck.set(true);
    assert_eq!(block_on(timed.get("k")), Err(StoreError));
    assert_eq!(block_on(timed.put("k", "w", None)), Err(StoreError));
    assert_eq!(block_on(timed.delete("k")), Err(StoreError));
    assert_eq!(*timer.gave_up.borrow(), vec![KV_TIMEOUT_MS; 3]);
    assert_eq!(block_on(stuck.kv.get("k")), Ok(Some("v".into())));
}

/// The timeout fits inside the worker's: the allowlist read and the
/// replica write of one request both time out before the worker gives
/// up, with time to spare.
#[test]
fn two_kv_timeouts_fit_inside_the_workers() {
    const { assert!(2 * KV_TIMEOUT_MS + 1_000 <= crate::authority::CALL_TIMEOUT_MS) };
}

const NOW: i64 = 1_764_000_000;

fn body(request: impl Into<Request>) -> String {
    serde_json::to_string(&Envelope::new(OpenId::new("o1"), request, i64::MAX)).expect("serializes")
}

#[test]
fn a_replica_write_that_never_answers_is_a_503_and_the_saved_change_stands() {
    let sid = SessionId::parse("AAAAAAAAAAAAAAAAAAAAAA").expect("a session id");
    let kv = Stuck::default();
    let state = MemoryState::default();
    let cfg = test_config();
    let serial = Serial::default();
    // Each ms of a timeout is one yield of [`YieldTimer`]: a KV call that
    // answers after one yield is in time, one that never answers is not.
    let server = Server {
        state: &state,
        kv: &kv,
        timer: &YieldTimer,
        cfg: &cfg,
        serial: &serial,
        pacing: &Pacing::default(),
    };
    let login = Login {
        sid: sid.clone(),
        session_key: SessionKey::from_base64("tiihtNczf5v6AKRyjwEUhQ==").expect("16 bytes"),
        unionid: None,
        refresh_hash: RefreshHash::new("h"),
        ip: None,
    };
    assert_eq!(block_on(server.answer(&body(login), NOW)).status, 200);
    assert!(kv.kv.data.borrow().contains_key(&replica_key(&sid)));
    kv.stuck.set(true);
    let answered = block_on(server.answer(&body(Logout { sid: sid.clone() }), NOW + 1));
    assert_eq!(answered, Answered::error(503, "storage unavailable"));
    // The logout was saved before the replica write, and is not undone.
    let text = state.text.borrow().clone().expect("a state");
    let saved: UserState = serde_json::from_str(&text).expect("parses");
    assert!(saved.sessions[&sid].revoked_at.is_some());
    // The turn was handed on: the next request is answered.
    kv.stuck.set(false);
    let check = crate::authority::protocol::CheckSession { sid };
    assert_eq!(block_on(server.answer(&body(check), NOW + 2)).status, 200);
}
