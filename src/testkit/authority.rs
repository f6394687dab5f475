//! Every user's session authority in memory.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use super::{MemoryStore, YieldOnce};
use crate::authority::machine::UserState;
use crate::authority::protocol;
use crate::authority::queue::{Serial, Waiting};
use crate::authority::server::{Pacing, Server, StateStore};
use crate::authority::timeout::Timer;
use crate::authority::{Answered, AuthorityClient, CallFailure};
use crate::config::Config;
use crate::ids::OpenId;
use crate::store::StoreError;

/// One authority's storage, in memory. Every load and save gives way to
/// the other futures of a join first, as real I/O would.
#[derive(Default)]
pub(crate) struct MemoryState {
    pub(crate) text: RefCell<Option<String>>,
    /// When it asked to be woken, in ms since the epoch.
    pub(crate) alarm_ms: Cell<Option<i64>>,
    /// How many writes it took.
    pub(crate) saves: Cell<usize>,
}

impl StateStore for MemoryState {
    async fn load(&self) -> Result<Option<String>, StoreError> {
        YieldOnce(false).await;
        Ok(self.text.borrow().clone())
    }
    async fn save(&self, state: &str, alarm_ms: Option<i64>) -> Result<(), StoreError> {
        YieldOnce(false).await;
        *self.text.borrow_mut() = Some(state.to_string());
        self.alarm_ms.set(alarm_ms);
        self.saves.set(self.saves.get() + 1);
        Ok(())
    }
}

/// A timer whose every ms of sleep is one yield: a KV call that gives
/// way once answers in time, one that never answers times out. Its clock
/// stands at 0 ms: no deadline passes.
pub(crate) struct YieldTimer;

impl Timer for YieldTimer {
    async fn sleep(&self, ms: u32) {
        yield_ms(ms).await;
    }
    fn now_ms(&self) -> i64 {
        0
    }
}

/// [`YieldTimer`]'s sleeps, on the KV's clock (its whole seconds, in ms),
/// which a test moves to make deadlines pass.
pub(crate) struct KvClock(pub(crate) Rc<MemoryStore>);

impl Timer for KvClock {
    async fn sleep(&self, ms: u32) {
        yield_ms(ms).await;
    }
    fn now_ms(&self) -> i64 {
        self.0.now.get() * 1000
    }
}

async fn yield_ms(ms: u32) {
    for _ in 0..ms {
        YieldOnce(false).await;
    }
}

#[derive(Default)]
struct Slot {
    state: MemoryState,
    serial: Serial,
    pacing: Pacing,
}

/// Every user's authority in memory, as the Durable Objects would be:
/// one slot per openid, each handling its requests one at a time, with
/// KV (`kv`) as the replica. Requests and answers go through JSON, as
/// over the wire.
pub(crate) struct MemoryAuthority {
    pub(crate) kv: Rc<MemoryStore>,
    pub(crate) cfg: Rc<Config>,
    /// The authorities' and the worker's clock: the KV's.
    clock: KvClock,
    slots: RefCell<HashMap<OpenId, Rc<Slot>>>,
    /// Every call fails (the authority is unreachable).
    pub(crate) fail: Cell<bool>,
    /// The authority runs the previous release (a deploy under way): it
    /// reads wire versions up to the previous release's newest only, and
    /// answers a newer one 501.
    pub(crate) older: Cell<bool>,
    /// How many calls reached an authority.
    pub(crate) calls: Cell<usize>,
}

impl MemoryAuthority {
    pub(crate) fn new(kv: Rc<MemoryStore>, cfg: Rc<Config>) -> Self {
        MemoryAuthority {
            clock: KvClock(Rc::clone(&kv)),
            kv,
            cfg,
            slots: RefCell::default(),
            fail: Cell::new(false),
            older: Cell::new(false),
            calls: Cell::new(0),
        }
    }

    /// What `openid`'s authority has saved.
    pub(crate) fn state(&self, openid: &OpenId) -> Option<UserState> {
        let slots = self.slots.borrow();
        let text = slots.get(openid)?.state.text.borrow().clone()?;
        Some(serde_json::from_str(&text).expect("saved state parses"))
    }

    /// Every saved state, with its user.
    pub(crate) fn states(&self) -> Vec<(OpenId, UserState)> {
        let ids: Vec<OpenId> = self.slots.borrow().keys().cloned().collect();
        ids.into_iter()
            .filter_map(|id| self.state(&id).map(|s| (id, s)))
            .collect()
    }

    /// Runs `openid`'s alarm at the KV clock's time.
    pub(crate) async fn alarm(&self, openid: &OpenId) -> Result<(), StoreError> {
        let slot = self.slot(openid);
        self.server(&slot).alarm(self.kv.now.get()).await
    }

    /// When `openid`'s authority asked to be woken, in ms since the
    /// epoch.
    pub(crate) fn alarm_ms(&self, openid: &OpenId) -> Option<i64> {
        self.slots.borrow().get(openid)?.state.alarm_ms.get()
    }

    /// A place in `openid`'s line, as a request's: while its turn is
    /// held, that user's requests wait.
    pub(crate) fn turn(&self, openid: &OpenId) -> Waiting {
        self.slot(openid).serial.turn()
    }

    /// How many of `openid`'s requests wait for their turn.
    pub(crate) fn waiting(&self, openid: &OpenId) -> usize {
        self.slot(openid).serial.waiting()
    }

    fn slot(&self, openid: &OpenId) -> Rc<Slot> {
        Rc::clone(self.slots.borrow_mut().entry(openid.clone()).or_default())
    }

    fn server<'a>(&'a self, slot: &'a Slot) -> Server<'a, MemoryState, MemoryStore, KvClock> {
        Server {
            state: &slot.state,
            kv: &self.kv,
            timer: &self.clock,
            cfg: &self.cfg,
            serial: &slot.serial,
            pacing: &slot.pacing,
        }
    }
}

/// The newest wire version of the release before this one: the newest
/// of the previous versions this code still reads.
fn previous_release_newest() -> u32 {
    let previous = protocol::PREVIOUS_WIRE_VERSIONS.iter().copied().max();
    previous.expect("a previous wire version")
}

impl AuthorityClient for MemoryAuthority {
    async fn post(&self, openid: &OpenId, body: String) -> Result<Answered, CallFailure> {
        YieldOnce(false).await;
        if self.fail.get() {
            return Err(CallFailure::Unreachable);
        }
        self.calls.set(self.calls.get() + 1);
        let newest = if self.older.get() {
            previous_release_newest()
        } else {
            protocol::WIRE_VERSION
        };
        let slot = self.slot(openid);
        let server = self.server(&slot);
        let answered = server.answer_upto(newest, &body, self.kv.now.get()).await;
        YieldOnce(false).await;
        Ok(answered)
    }

    /// The in-memory authority always answers: the timeout never runs
    /// out.
    async fn sleep(&self, _ms: u32) {
        std::future::pending::<()>().await;
    }

    fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }
}
