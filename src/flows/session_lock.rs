//! One change of a session at a time within an isolate.
//!
//! KV has no compare-and-swap: two requests of one isolate that read a
//! session, wait on I/O, then write it back would lose one write. A request
//! that changes a session (refresh, phone binding) holds its lock.
//!
//! Waiting is by polling the transport's timer, not by being woken from
//! another request: workerd forbids one request's I/O from running in
//! another's context. A waiter gives up after a bound and goes ahead, so a
//! request that hangs cannot wedge the session for the isolate's lifetime.

use std::cell::RefCell;
use std::collections::HashSet;

use crate::ids::SessionId;
use crate::wechat::Transport;

/// How often a waiting request looks again.
pub(crate) const POLL_MS: u32 = 20;

/// The sessions some request of this isolate is changing now.
#[derive(Default)]
pub(crate) struct SessionLocks(RefCell<HashSet<SessionId>>);

/// Held while a session changes; released on drop, however the change ends.
pub(crate) struct SessionLock<'a> {
    locks: &'a SessionLocks,
    sid: SessionId,
}

impl SessionLocks {
    /// Waits (at most `limit_ms`) until no other request holds `sid`, then
    /// holds it.
    pub(crate) async fn lock<T: Transport>(
        &self,
        sid: &SessionId,
        timer: &T,
        limit_ms: u64,
    ) -> SessionLock<'_> {
        let mut waited_ms = 0;
        while waited_ms < limit_ms && self.0.borrow().contains(sid) {
            timer.pause(POLL_MS).await;
            waited_ms += u64::from(POLL_MS);
        }
        self.0.borrow_mut().insert(sid.clone());
        SessionLock {
            locks: self,
            sid: sid.clone(),
        }
    }

    /// Whether no session is locked (tests check that locks are released).
    #[cfg(test)]
    pub(crate) fn is_idle(&self) -> bool {
        self.0.borrow().is_empty()
    }
}

impl Drop for SessionLock<'_> {
    fn drop(&mut self) {
        self.locks.0.borrow_mut().remove(&self.sid);
    }
}
