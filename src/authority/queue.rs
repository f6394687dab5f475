//! One request at a time, first come first served, within the worker's
//! deadline.
//!
//! A Durable Object only holds back new events while it awaits its *own
//! storage*, not while it awaits KV, so without a turn a logout could run
//! between a refresh's load and save. Holding the turn across the whole
//! request also keeps the replica writes in the order the changes were
//! made. Every request and the alarm take the turn ([`Serial::turn`]).
//!
//! The turn is handed over, never grabbed: when a [`Turn`] ends (it is
//! dropped, whether its holder finished, failed or was itself dropped),
//! the first request still waiting is woken and the turn is already its
//! own, so a newcomer arriving between that wake and the waiter's next
//! poll queues behind it. A waiter that is dropped leaves the line, and
//! passes the turn on if it had just been handed it. Nothing polls: a
//! waiter sleeps until its waker is called.
//!
//! Each request carries its worker's deadline (the worker answers 503
//! when its authority timeout runs out, and stops waiting). One whose turn
//! comes after that is not applied ([`Serial::turn_before`]): the worker's
//! 503 stays true, and a stale refresh cannot rotate after the client's
//! retry (which would make that retry, or the next, count as reuse). An
//! operation that started in time finishes, bounded by the KV timeouts
//! (`timeout`); its change is then the one the client's retry finds. The
//! deadline is the worker's clock and the turn is timed by the object's:
//! both are Cloudflare's synchronised clocks, and a skew between them only
//! moves the cut-off by as much.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::timeout::Timer;

/// One authority's line of requests (see the module docs). Cheap to
/// create; one per Durable Object.
#[derive(Default)]
pub(crate) struct Serial(Rc<RefCell<Line>>);

#[derive(Default)]
struct Line {
    /// The turn is held, or handed to [`Line::handed`] and not yet taken.
    busy: bool,
    /// The ticket the turn was handed to, until its waiter takes it.
    handed: Option<u64>,
    /// Who waits, in arrival order, with the waker of its last poll.
    waiting: VecDeque<(u64, Option<Waker>)>,
    /// The next arrival's ticket.
    next: u64,
}

/// The turn: while it lives, no other request of this authority runs.
/// Dropping it hands the turn to the next in line.
#[must_use = "the turn ends when it is dropped"]
pub(crate) struct Turn(Rc<RefCell<Line>>);

/// A place in line: resolves to the [`Turn`] when it is this one's.
/// Dropped before that, it leaves the line.
#[must_use = "futures do nothing unless awaited"]
pub(crate) struct Waiting {
    line: Rc<RefCell<Line>>,
    ticket: u64,
    taken: bool,
}

/// The request's deadline passed before its turn came: it was not
/// applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Late;

impl Serial {
    /// Joins the line now; the turn comes after everyone who joined
    /// before.
    pub(crate) fn turn(&self) -> Waiting {
        let mut line = self.0.borrow_mut();
        let ticket = line.next;
        line.next += 1;
        if line.busy {
            line.waiting.push_back((ticket, None));
        } else {
            line.busy = true;
            line.handed = Some(ticket);
        }
        Waiting {
            line: Rc::clone(&self.0),
            ticket,
            taken: false,
        }
    }

    /// The turn, if it comes by `deadline_ms` (ms since the epoch, by
    /// `clock`); [`Late`] otherwise, and the turn goes straight on to the
    /// next in line. A request already late does not queue at all.
    pub(crate) async fn turn_before(
        &self,
        deadline_ms: i64,
        clock: &impl Timer,
    ) -> Result<Turn, Late> {
        if clock.now_ms() > deadline_ms {
            return Err(Late);
        }
        let turn = self.turn().await;
        if clock.now_ms() > deadline_ms {
            return Err(Late);
        }
        Ok(turn)
    }

    /// How many wait for the turn (not counting its holder).
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.0.borrow().waiting.len()
    }
}

/// Ends a turn: hands it to the first in line and wakes it, or frees it.
fn pass_on(line: &RefCell<Line>) {
    let waker = {
        let mut line = line.borrow_mut();
        if let Some((ticket, waker)) = line.waiting.pop_front() {
            line.handed = Some(ticket);
            waker
        } else {
            line.busy = false;
            None
        }
    };
    // Woken outside the borrow: a waker may poll at once.
    if let Some(waker) = waker {
        waker.wake();
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        pass_on(&self.0);
    }
}

impl Future for Waiting {
    type Output = Turn;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Turn> {
        let this = self.get_mut();
        let mut line = this.line.borrow_mut();
        if line.handed == Some(this.ticket) {
            line.handed = None;
            drop(line);
            this.taken = true;
            return Poll::Ready(Turn(Rc::clone(&this.line)));
        }
        if let Some((_, waker)) = line.waiting.iter_mut().find(|(t, _)| *t == this.ticket) {
            match waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *waker = Some(cx.waker().clone()),
            }
        }
        Poll::Pending
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if self.taken {
            return;
        }
        let was_handed = {
            let mut line = self.line.borrow_mut();
            if line.handed == Some(self.ticket) {
                line.handed = None;
                true
            } else {
                line.waiting.retain(|(t, _)| *t != self.ticket);
                false
            }
        };
        if was_handed {
            pass_on(&self.line);
        }
    }
}

#[cfg(test)]
mod tests;
