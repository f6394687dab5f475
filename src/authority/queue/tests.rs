//! The line, driven by hand: every future is polled when and in the order
//! a test says, with a waker that counts its wakes, so arrival order,
//! cancellation and hand-over are forced rather than hoped for; then an
//! authority's deadline, on requests that wait behind a slow one.

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use super::*;
use crate::authority::machine::UserState;
use crate::authority::protocol::{Envelope, Login, Logout, Request};
use crate::authority::server::{Answered, Pacing, Server};
use crate::config::Config;
use crate::ids::{OpenId, SessionId};
use crate::secret::{RefreshHash, SessionKey};
use crate::store::replica_key;
use crate::testkit::{test_config, KvClock, MemoryState, MemoryStore};

/// Counts the wakes of one future.
struct Wakes(AtomicUsize);

impl Wake for Wakes {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A future polled by hand.
struct Hand<F: Future> {
    future: Pin<Box<F>>,
    wakes: Arc<Wakes>,
    waker: Waker,
}

impl<F: Future> Hand<F> {
    fn new(future: F) -> Self {
        let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
        Hand {
            future: Box::pin(future),
            waker: Waker::from(Arc::clone(&wakes)),
            wakes,
        }
    }

    /// Polls once.
    fn poll(&mut self) -> Poll<F::Output> {
        let mut cx = Context::from_waker(&self.waker);
        self.future.as_mut().poll(&mut cx)
    }

    /// Polls until it is done or waits for something else than itself (a
    /// pending poll that did not wake it).
    fn run(&mut self) -> Poll<F::Output> {
        loop {
            let before = self.woken();
            if let Poll::Ready(out) = self.poll() {
                return Poll::Ready(out);
            }
            if self.woken() == before {
                return Poll::Pending;
            }
        }
    }

    /// How many times it was woken.
    fn woken(&self) -> usize {
        self.wakes.0.load(Ordering::SeqCst)
    }

    fn done(&mut self) -> F::Output {
        match self.poll() {
            Poll::Ready(out) => out,
            Poll::Pending => panic!("still waiting"),
        }
    }
}

/// Every order of polling three waiters.
const ORDERS: [[usize; 3]; 6] = [
    [0, 1, 2],
    [0, 2, 1],
    [1, 0, 2],
    [1, 2, 0],
    [2, 0, 1],
    [2, 1, 0],
];

#[test]
fn the_turn_goes_in_arrival_order_whatever_the_polling_order() {
    for order in ORDERS {
        let serial = Serial::default();
        let mut turn = Hand::new(serial.turn()).done();
        // Three arrive, in order 0, 1, 2; they are polled in `order`.
        let mut line: Vec<Option<Hand<Waiting>>> =
            (0..3).map(|_| Some(Hand::new(serial.turn()))).collect();
        for &i in &order {
            assert!(line[i].as_mut().is_some_and(|w| w.poll().is_pending()));
        }
        assert_eq!(serial.waiting(), 3);
        let mut served = Vec::new();
        loop {
            // Nobody is woken while the turn is held: nothing polls.
            assert!(line.iter().flatten().all(|w| w.woken() == 0), "{order:?}");
            drop(turn);
            let Some(first) = line.iter().position(Option::is_some) else {
                break;
            };
            // The turn is handed to the first in line, and only it is woken.
            let woken: Vec<usize> = line.iter().flatten().map(Hand::woken).collect();
            let mut expected = vec![0; woken.len()];
            expected[0] = 1;
            assert_eq!(woken, expected, "{order:?}");
            // A newcomer polled before it does not get ahead of it, nor do
            // the others, polled in `order`.
            let mut newcomer = Hand::new(serial.turn());
            assert!(newcomer.poll().is_pending(), "{order:?}: no jumping");
            drop(newcomer);
            for &i in &order {
                if let Some(w) = line[i].as_mut().filter(|_| i != first) {
                    assert!(w.poll().is_pending(), "{order:?}: {i} before {first}");
                }
            }
            turn = line[first].take().expect("in line").done();
            served.push(first);
        }
        assert_eq!(served, [0, 1, 2], "{order:?}");
        // Free again: the next one takes the turn at once.
        assert!(Hand::new(serial.turn()).poll().is_ready());
    }
}

#[test]
fn a_waiter_that_gives_up_does_not_hold_up_the_line() {
    // Gone while waiting: it leaves the line.
    let serial = Serial::default();
    let held = Hand::new(serial.turn()).done();
    let mut gone = Hand::new(serial.turn());
    let mut next = Hand::new(serial.turn());
    assert!(gone.poll().is_pending());
    assert!(next.poll().is_pending());
    drop(gone);
    assert_eq!(serial.waiting(), 1);
    drop(held);
    assert_eq!(next.woken(), 1);
    drop(next.done());

    // Gone after the turn was handed to it, before it took it: the turn
    // goes on to the next.
    let serial = Serial::default();
    let held = Hand::new(serial.turn()).done();
    let mut gone = Hand::new(serial.turn());
    let mut next = Hand::new(serial.turn());
    assert!(gone.poll().is_pending());
    assert!(next.poll().is_pending());
    drop(held);
    assert_eq!((gone.woken(), next.woken()), (1, 0));
    drop(gone);
    assert_eq!(next.woken(), 1);
    drop(next.done());

    // Never polled at all, and gone: the same.
    let serial = Serial::default();
    let unpolled = serial.turn();
    let mut next = Hand::new(serial.turn());
    assert!(next.poll().is_pending());
    drop(unpolled);
    drop(next.done());
    assert!(Hand::new(serial.turn()).poll().is_ready());
}

#[test]
fn a_dropped_holder_passes_the_turn_on() {
    let serial = Serial::default();
    // A request that takes the turn and never finishes (a call that never
    // answers), then is dropped (the runtime cancels it).
    let mut holder = Hand::new(async {
        let _turn = serial.turn().await;
        std::future::pending::<()>().await;
    });
    assert!(holder.poll().is_pending());
    let mut next = Hand::new(serial.turn());
    assert!(next.poll().is_pending());
    drop(holder);
    assert_eq!(next.woken(), 1);
    drop(next.done());
}

/// A clock the test moves.
struct Clock(Cell<i64>);

impl Timer for Clock {
    async fn sleep(&self, _ms: u32) {
        std::future::pending::<()>().await;
    }
    fn now_ms(&self) -> i64 {
        self.0.get()
    }
}

#[test]
fn a_turn_that_comes_after_the_deadline_is_refused_and_passed_on() {
    let serial = Serial::default();
    let clock = Clock(Cell::new(1_000));
    // Already late: refused without joining the line.
    assert_eq!(
        Hand::new(serial.turn_before(999, &clock)).done().err(),
        Some(Late)
    );
    // In time: the turn.
    let held = Hand::new(serial.turn_before(1_000, &clock)).done();
    assert!(held.is_ok());
    let mut late = Hand::new(serial.turn_before(1_500, &clock));
    let mut after = Hand::new(serial.turn_before(9_000, &clock));
    assert!(late.poll().is_pending());
    assert!(after.poll().is_pending());
    clock.0.set(2_000);
    drop(held);
    // Its turn came after its deadline: refused, and the turn went on.
    assert_eq!(late.done().err(), Some(Late));
    assert_eq!(after.woken(), 1);
    assert!(after.done().is_ok());
}

// An authority's requests behind a slow one.

const NOW: i64 = 1_764_000_000;

/// When a worker that sends at `now` (seconds) stops waiting.
fn deadline(now: i64) -> i64 {
    now * 1000 + i64::from(crate::authority::CALL_TIMEOUT_MS)
}

fn sid() -> SessionId {
    SessionId::parse("AAAAAAAAAAAAAAAAAAAAAA").expect("a session id")
}

fn body(request: impl Into<Request>, deadline_ms: i64) -> String {
    serde_json::to_string(&Envelope::new(OpenId::new("o1"), request, deadline_ms))
        .expect("serializes")
}

/// One authority with a session, its KV and a clock the test moves.
struct Authority {
    state: MemoryState,
    kv: Rc<MemoryStore>,
    clock: KvClock,
    cfg: Config,
    serial: Serial,
    pacing: Pacing,
}

impl Authority {
    fn with_a_session() -> Self {
        let kv = Rc::new(MemoryStore::default());
        kv.now.set(NOW);
        let a = Authority {
            state: MemoryState::default(),
            clock: KvClock(Rc::clone(&kv)),
            kv,
            cfg: test_config(),
            serial: Serial::default(),
            pacing: Pacing::default(),
        };
        let login = Login {
            sid: sid(),
            session_key: SessionKey::from_base64("tiihtNczf5v6AKRyjwEUhQ==").expect("16 bytes"),
            unionid: None,
            refresh_hash: RefreshHash::new("h"),
            ip: None,
        };
        let answered = pollster::block_on(a.server().answer(&body(login, deadline(NOW)), NOW));
        assert_eq!(answered.status, 200, "{answered:?}");
        a
    }

    fn server(&self) -> Server<'_, MemoryState, MemoryStore, KvClock> {
        Server {
            state: &self.state,
            kv: &self.kv,
            timer: &self.clock,
            cfg: &self.cfg,
            serial: &self.serial,
            pacing: &self.pacing,
        }
    }

    fn saved(&self) -> UserState {
        let text = self.state.text.borrow().clone().expect("a state");
        serde_json::from_str(&text).expect("parses")
    }

    /// A logout sent at `sent` whose turn comes at `turn` (both in
    /// seconds), after a slow request that held the turn until then.
    fn logout_behind_a_slow_one(&self, sent: i64, turn: i64) -> Answered {
        let server = self.server();
        let slow = Hand::new(self.serial.turn()).done();
        self.kv.now.set(sent);
        let request = body(Logout { sid: sid() }, deadline(sent));
        let mut logout = Hand::new(server.answer(&request, sent));
        assert!(logout.run().is_pending());
        assert_eq!(self.serial.waiting(), 1, "the logout waits its turn");
        self.kv.now.set(turn);
        drop(slow);
        match logout.run() {
            Poll::Ready(answered) => answered,
            Poll::Pending => panic!("the logout still waits"),
        }
    }
}

#[test]
fn a_request_whose_worker_gave_up_in_line_is_not_applied() {
    let a = Authority::with_a_session();
    let state = a.state.text.borrow().clone();
    let kv = a.kv.raw();
    // Sent at NOW + 1; the worker gives up at NOW + 6; its turn comes at
    // NOW + 7.
    let answered = a.logout_behind_a_slow_one(NOW + 1, NOW + 7);
    assert_eq!(answered, Answered::error(504, "deadline passed"));
    // Nothing applied: the state is as it was, and KV was not written.
    assert_eq!(*a.state.text.borrow(), state);
    assert_eq!(a.kv.raw(), kv);
    assert!(a.saved().sessions[&sid()].revoked_at.is_none());
    assert!(a.kv.data.borrow().contains_key(&replica_key(&sid())));
    // The turn went on: the next request runs.
    assert!(Hand::new(a.serial.turn()).poll().is_ready());
}

#[test]
fn a_request_whose_turn_comes_in_time_is_applied() {
    let a = Authority::with_a_session();
    // Sent at NOW + 1; its turn comes at NOW + 5, before the worker gives
    // up at NOW + 6.
    let answered = a.logout_behind_a_slow_one(NOW + 1, NOW + 5);
    assert_eq!(answered.status, 200, "{answered:?}");
    assert!(a.saved().sessions[&sid()].revoked_at.is_some());
    assert!(!a.kv.data.borrow().contains_key(&replica_key(&sid())));
}
