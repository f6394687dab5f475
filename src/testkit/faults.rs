//! Faults on purpose: wrappers around KV ([`FaultyStore`]), an authority's
//! storage ([`FaultyState`]) and the WeChat transport ([`FaultyTransport`])
//! that share one call counter ([`Faults`]) and fail the Nth call of a run,
//! with an error or by never answering; and an authority
//! ([`FaultyAuthority`]) built on them that can be restarted between its
//! storage write and its replica write.
//!
//! Time is virtual: one yield of a future is [`MS_PER_YIELD`]
//! milliseconds ([`VirtualTimer`], [`FaultyAuthority::sleep`]), so a call
//! that never answers is given up on only by a timer of the code under
//! test, and a call that answers (a few dozen yields) always beats the 5 s
//! authority timeout.
//!
//! Where the code under test has no timer, a call that never answers hangs
//! it for good; the harness does not paper over that:
//! - an authority's request keeps running after the worker gave up on it
//!   (as a Durable Object's does): it stays in [`FaultyAuthority`]'s task
//!   list, holding its turn, and is polled whenever the authority is asked
//!   anything again;
//! - a worker request that waits on KV forever is given up on by the
//!   client ([`within`]), and the scenarios report it.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::task::{Context, Poll};

use super::{MemoryState, MemoryStore, YieldOnce};
use crate::authority::queue::Serial;
use crate::authority::server::{Answered, Pacing, Server, StateStore};
use crate::authority::timeout::Timer;
use crate::authority::{AuthorityClient, CallFailure};
use crate::config::Config;
use crate::ids::OpenId;
use crate::store::{Store, StoreError};
use crate::wechat::{Transport, TransportError, WireRequest, WireResponse};

/// Which call of which port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Op {
    KvGet,
    KvPut,
    KvDelete,
    /// The authority's storage: load.
    Load,
    /// The authority's storage: save.
    Save,
    /// One HTTP request to WeChat.
    Send,
}

/// The three ports the wrappers stand in front of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Port {
    Kv,
    Storage,
    WeChat,
}

impl Op {
    pub(crate) fn port(self) -> Port {
        match self {
            Op::KvGet | Op::KvPut | Op::KvDelete => Port::Kv,
            Op::Load | Op::Save => Port::Storage,
            Op::Send => Port::WeChat,
        }
    }
}

/// What happens to the planned call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Fault {
    /// It fails (KV and storage: `StoreError`; WeChat: a network error).
    Error,
    /// It never answers. (WeChat: the transport's own timeout ends it; see
    /// [`FaultyTransport`].)
    Hang,
    /// Storage saves only: the save is made, then every authority
    /// restarts before anything else happens (every deploy does this):
    /// its in-memory parts are dropped and the worker's call fails.
    Restart,
}

/// The shared call counter and the plan: while armed, every call through a
/// wrapper is counted (and its [`Op`] recorded), and call `n` of the plan
/// gets its fault.
#[derive(Default)]
pub(crate) struct Faults {
    armed: Cell<bool>,
    calls: Cell<usize>,
    plan: Cell<Option<(usize, Fault)>>,
    trace: RefCell<Vec<Op>>,
    /// A restart was planned and the save is made: the authority drops
    /// its in-memory parts at its next look.
    restart_due: Cell<bool>,
}

impl Faults {
    /// Starts counting from zero; `plan` is `(n, fault)` for call `n`
    /// (1-based), or `None` for a clean run.
    pub(crate) fn arm(&self, plan: Option<(usize, Fault)>) {
        self.calls.set(0);
        self.trace.borrow_mut().clear();
        self.plan.set(plan);
        self.armed.set(true);
    }

    /// Stops counting and failing (what was counted stays readable).
    pub(crate) fn clear(&self) {
        self.armed.set(false);
        self.plan.set(None);
    }

    /// The calls counted since [`Faults::arm`], in order.
    pub(crate) fn trace(&self) -> Vec<Op> {
        self.trace.borrow().clone()
    }

    /// Counts one call: its fault, if it is the planned one.
    fn next(&self, op: Op) -> Option<Fault> {
        if !self.armed.get() {
            return None;
        }
        let n = self.calls.get() + 1;
        self.calls.set(n);
        self.trace.borrow_mut().push(op);
        match self.plan.get() {
            Some((at, fault)) if at == n => Some(fault),
            _ => None,
        }
    }
}

/// A future that never finishes: a call that never answers.
async fn never<T>() -> T {
    std::future::pending().await
}

/// KV (or any [`Store`]) with faults.
pub(crate) struct FaultyStore<S> {
    pub(crate) inner: Rc<S>,
    pub(crate) faults: Rc<Faults>,
}

impl<S: Store> FaultyStore<S> {
    async fn gate(&self, op: Op) -> Result<(), StoreError> {
        match self.faults.next(op) {
            None => Ok(()),
            Some(Fault::Hang) => never().await,
            Some(Fault::Error | Fault::Restart) => {
                YieldOnce(false).await;
                Err(StoreError)
            }
        }
    }
}

impl<S: Store> Store for FaultyStore<S> {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.gate(Op::KvGet).await?;
        self.inner.get(key).await
    }
    async fn put(&self, key: &str, value: &str, ttl: Option<u64>) -> Result<(), StoreError> {
        self.gate(Op::KvPut).await?;
        self.inner.put(key, value, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.gate(Op::KvDelete).await?;
        self.inner.delete(key).await
    }
}

/// An authority's storage with faults. Its contents live in the shared
/// [`MemoryState`], which outlives restarts.
pub(crate) struct FaultyState {
    pub(crate) inner: Rc<MemoryState>,
    pub(crate) faults: Rc<Faults>,
}

impl StateStore for FaultyState {
    async fn load(&self) -> Result<Option<String>, StoreError> {
        match self.faults.next(Op::Load) {
            None => self.inner.load().await,
            Some(Fault::Hang) => never().await,
            Some(Fault::Error | Fault::Restart) => Err(StoreError),
        }
    }
    async fn save(&self, state: &str, alarm_ms: Option<i64>) -> Result<(), StoreError> {
        match self.faults.next(Op::Save) {
            None => self.inner.save(state, alarm_ms).await,
            Some(Fault::Hang) => never().await,
            Some(Fault::Error) => Err(StoreError),
            Some(Fault::Restart) => {
                self.inner.save(state, alarm_ms).await?;
                self.faults.restart_due.set(true);
                never().await
            }
        }
    }
}

/// The WeChat transport with faults. [`Transport`] promises a bounded
/// time: the shell's `fetch` races every send with `WX_TIMEOUT_MS`, and
/// nothing in the core times a send out. So "never answers" here is what
/// the shell makes of it: [`TransportError::Timeout`] once `timeout_ms`
/// have passed.
pub(crate) struct FaultyTransport<T> {
    pub(crate) inner: T,
    pub(crate) faults: Rc<Faults>,
    pub(crate) timeout_ms: u32,
}

impl<T: Transport> Transport for FaultyTransport<T> {
    async fn send(&self, req: WireRequest) -> Result<WireResponse, TransportError> {
        match self.faults.next(Op::Send) {
            None => self.inner.send(req).await,
            Some(Fault::Hang) => {
                VirtualTimer.sleep(self.timeout_ms).await;
                Err(TransportError::Timeout)
            }
            Some(Fault::Error | Fault::Restart) => Err(TransportError::Network),
        }
    }
    async fn pause(&self, ms: u32) {
        self.inner.pause(ms).await;
    }
}

/// Virtual time: every [`MS_PER_YIELD`] milliseconds are one yield (at
/// least one per pause).
pub(crate) struct VirtualTimer;

/// How many virtual milliseconds one yield stands for: a clean authority
/// call takes a few dozen yields, far below the 5 s timeout's 500.
pub(crate) const MS_PER_YIELD: u32 = 10;

thread_local! {
    /// Virtual milliseconds since the test began: each yield of a sleep
    /// moves it on by [`MS_PER_YIELD`], so the worker's deadlines and the
    /// authority's clock agree.
    static VIRTUAL_MS: Cell<i64> = const { Cell::new(0) };
}

impl Timer for VirtualTimer {
    async fn sleep(&self, ms: u32) {
        for _ in 0..(ms / MS_PER_YIELD).max(1) {
            YieldOnce(false).await;
            VIRTUAL_MS.with(|t| t.set(t.get() + i64::from(MS_PER_YIELD)));
        }
    }
    fn now_ms(&self) -> i64 {
        VIRTUAL_MS.with(Cell::get)
    }
}

/// `f`'s output, or `None` when `ms` (virtual) milliseconds pass first:
/// the client gives up on a request that never answers.
pub(crate) async fn within<F: Future>(ms: u32, f: F) -> Option<F::Output> {
    let mut f = pin!(f);
    let mut timer = pin!(VirtualTimer.sleep(ms));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(x) = f.as_mut().poll(cx) {
            return Poll::Ready(Some(x));
        }
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}

/// What an authority's request answers: the worker's view of it.
type Outcome = Rc<RefCell<Option<Result<Answered, CallFailure>>>>;

/// One request (or alarm) an authority is running. It keeps running when
/// the worker stops waiting for it.
struct Task {
    run: Pin<Box<dyn Future<Output = Answered>>>,
    outcome: Outcome,
}

/// What a task runs.
enum Job {
    Answer { body: String, now: i64 },
    Alarm { now: i64 },
}

struct Slot {
    /// Storage: survives restarts.
    state: Rc<MemoryState>,
    /// In memory: a restart makes a new one.
    serial: RefCell<Rc<Serial>>,
    pacing: RefCell<Rc<Pacing>>,
}

/// Every user's authority, as in [`super::MemoryAuthority`], over the
/// faulty storage and KV, with virtual time and restarts.
pub(crate) struct FaultyAuthority {
    pub(crate) kv: Rc<FaultyStore<MemoryStore>>,
    pub(crate) cfg: Rc<Config>,
    pub(crate) faults: Rc<Faults>,
    slots: RefCell<HashMap<OpenId, Rc<Slot>>>,
    tasks: RefCell<Vec<Task>>,
    /// How many times the authorities restarted.
    pub(crate) restarts: Cell<usize>,
}

impl FaultyAuthority {
    pub(crate) fn new(kv: Rc<FaultyStore<MemoryStore>>, cfg: Rc<Config>) -> Self {
        FaultyAuthority {
            faults: Rc::clone(&kv.faults),
            kv,
            cfg,
            slots: RefCell::default(),
            tasks: RefCell::default(),
            restarts: Cell::new(0),
        }
    }

    /// `openid`'s storage (what it has saved).
    pub(crate) fn storage(&self, openid: &OpenId) -> Rc<MemoryState> {
        Rc::clone(&self.slot(openid).state)
    }

    fn slot(&self, openid: &OpenId) -> Rc<Slot> {
        let mut slots = self.slots.borrow_mut();
        let slot = slots.entry(openid.clone()).or_insert_with(|| {
            Rc::new(Slot {
                state: Rc::default(),
                serial: RefCell::default(),
                pacing: RefCell::default(),
            })
        });
        Rc::clone(slot)
    }

    /// Starts `run` on `openid`'s authority: its outcome, filled in when
    /// it finishes (or the authority restarts).
    fn start(&self, openid: &OpenId, job: Job) -> Outcome {
        let slot = self.slot(openid);
        let state = FaultyState {
            inner: Rc::clone(&slot.state),
            faults: Rc::clone(&self.faults),
        };
        let serial = Rc::clone(&slot.serial.borrow());
        let pacing = Rc::clone(&slot.pacing.borrow());
        let kv = Rc::clone(&self.kv);
        let cfg = Rc::clone(&self.cfg);
        let task = async move {
            let server = Server {
                state: &state,
                kv: &*kv,
                timer: &VirtualTimer,
                cfg: &cfg,
                serial: &serial,
                pacing: &pacing,
            };
            match job {
                Job::Answer { body, now } => server.answer(&body, now).await,
                Job::Alarm { now } => match server.alarm(now).await {
                    Ok(()) => Answered::error(200, "alarm ran"),
                    Err(StoreError) => Answered::error(503, "alarm failed"),
                },
            }
        };
        let outcome = Outcome::default();
        self.tasks.borrow_mut().push(Task {
            run: Box::pin(task),
            outcome: Rc::clone(&outcome),
        });
        outcome
    }

    /// Runs every task one step; a due restart drops them all (their
    /// workers see the call fail) and every turn with them.
    fn poll_tasks(&self, cx: &mut Context<'_>) {
        let mut tasks = std::mem::take(&mut *self.tasks.borrow_mut());
        tasks.retain_mut(|t| match t.run.as_mut().poll(cx) {
            Poll::Ready(answered) => {
                *t.outcome.borrow_mut() = Some(Ok(answered));
                false
            }
            Poll::Pending => true,
        });
        if self.faults.restart_due.replace(false) {
            self.restarts.set(self.restarts.get() + 1);
            for t in tasks.drain(..) {
                *t.outcome.borrow_mut() = Some(Err(CallFailure::Unreachable));
            }
            for slot in self.slots.borrow().values() {
                *slot.serial.borrow_mut() = Rc::default();
                *slot.pacing.borrow_mut() = Rc::default();
            }
        }
        self.tasks.borrow_mut().extend(tasks);
    }

    /// Waits for `outcome`, running every task meanwhile.
    async fn wait(&self, outcome: Outcome) -> Result<Answered, CallFailure> {
        std::future::poll_fn(|cx| {
            self.poll_tasks(cx);
            match outcome.borrow_mut().take() {
                Some(done) => Poll::Ready(done),
                None => Poll::Pending,
            }
        })
        .await
    }

    /// Runs `openid`'s alarm at `now`; `None` when it has not finished
    /// within the authority call timeout.
    pub(crate) async fn alarm(&self, openid: &OpenId, now: i64) -> Option<Result<(), StoreError>> {
        let outcome = self.start(openid, Job::Alarm { now });
        let done = within(crate::authority::CALL_TIMEOUT_MS, self.wait(outcome)).await?;
        Some(match done {
            Ok(a) if a.status == 200 => Ok(()),
            _ => Err(StoreError),
        })
    }

    /// Lets the requests no worker waits for run for `ms` (virtual)
    /// milliseconds, or until they are all done.
    pub(crate) async fn settle(&self, ms: u32) {
        let idle = std::future::poll_fn(|cx| {
            self.poll_tasks(cx);
            if self.tasks.borrow().is_empty() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        });
        within(ms, idle).await;
    }
}

impl AuthorityClient for FaultyAuthority {
    async fn post(&self, openid: &OpenId, body: String) -> Result<Answered, CallFailure> {
        YieldOnce(false).await;
        let now = self.kv.inner.now.get();
        let outcome = self.start(openid, Job::Answer { body, now });
        let answered = self.wait(outcome).await;
        YieldOnce(false).await;
        answered
    }

    /// Virtual time: the 5 s timeout runs out after 500 yields.
    async fn sleep(&self, ms: u32) {
        VirtualTimer.sleep(ms).await;
    }

    fn now_ms(&self) -> i64 {
        VirtualTimer.now_ms()
    }
}

impl<S: Store + ?Sized> Store for Rc<S> {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        (**self).get(key).await
    }
    async fn put(&self, key: &str, value: &str, ttl: Option<u64>) -> Result<(), StoreError> {
        (**self).put(key, value, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        (**self).delete(key).await
    }
}

#[cfg(test)]
mod tests {
    use pollster::block_on;

    use super::*;

    fn store() -> FaultyStore<MemoryStore> {
        FaultyStore {
            inner: Rc::default(),
            faults: Rc::default(),
        }
    }

    #[test]
    fn only_the_planned_call_fails_and_every_armed_call_is_counted() {
        let kv = store();
        block_on(kv.put("k", "v", None)).expect("not armed: not counted");
        kv.faults.arm(Some((2, Fault::Error)));
        assert_eq!(block_on(kv.get("k")), Ok(Some("v".into())));
        assert_eq!(block_on(kv.delete("k")), Err(StoreError));
        assert_eq!(block_on(kv.get("k")), Ok(Some("v".into())), "not deleted");
        assert_eq!(kv.faults.trace(), vec![Op::KvGet, Op::KvDelete, Op::KvGet]);
        kv.faults.clear();
        assert_eq!(block_on(kv.delete("k")), Ok(()));
        assert_eq!(kv.faults.trace().len(), 3);
    }

    #[test]
    fn a_call_that_never_answers_is_only_ended_by_a_timer() {
        let kv = store();
        kv.faults.arm(Some((1, Fault::Hang)));
        assert_eq!(block_on(within(100, kv.get("k"))), None);
        assert_eq!(block_on(within(100, kv.get("k"))), Some(Ok(None)));
    }
}
