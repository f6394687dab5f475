//! The session-key steps: which session's key is the newest, a signature
//! with it, a key replaced. The keys never leave the machine; a step
//! answers with a signature, and the server opens data with
//! [`UserState::live_keys_newest_first`].

use super::{Context, Effects, SessionState, Step, UserState};
use crate::authority::protocol::{NoLiveSession, ReplaceKey, SessionEnded, SignLatest, Signed};
use crate::ids::SessionId;
use crate::secret::{login_state_signature, SessionKey};

impl SessionState {
    /// When the session's key was set: its login, or its last reset or
    /// re-key.
    pub(crate) fn key_at(&self) -> i64 {
        self.key_replaced_at.unwrap_or(self.created_at)
    }
}

impl UserState {
    /// The live sessions' keys, the newest first: the key set most
    /// recently ([`SessionState::key_at`]), of two set at the same second
    /// the later created, then the greater id (a fixed order).
    pub(crate) fn live_keys_newest_first(&self, now: i64) -> Vec<(&SessionId, &SessionKey)> {
        let mut live: Vec<(&SessionId, &SessionState)> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.is_live(now))
            .collect();
        live.sort_by(|(a_sid, a), (b_sid, b)| {
            (b.key_at(), b.created_at, *b_sid).cmp(&(a.key_at(), a.created_at, *a_sid))
        });
        live.into_iter()
            .map(|(sid, s)| (sid, &s.session_key))
            .collect()
    }
}

impl Step for SignLatest {
    type Reply = Result<Signed, NoLiveSession>;
    const READS_ONLY: bool = true;

    fn apply(self, state: &mut UserState, at: &Context<'_>, _: &mut Effects) -> Self::Reply {
        let keys = state.live_keys_newest_first(at.now);
        let (sid, key) = keys.first().ok_or(NoLiveSession)?;
        Ok(Signed {
            sid: (*sid).clone(),
            signature: login_state_signature(key, self.data.as_bytes()),
        })
    }
}

impl Step for ReplaceKey {
    type Reply = Result<(), SessionEnded>;

    /// The replica carries no key: a replaced key stands whatever KV
    /// says (an earlier change's replica left in the outbox is the
    /// alarm's to finish).
    fn stands_without_replica(_: &Self::Reply) -> bool {
        true
    }

    /// The failed decryptions stay counted: a new key does not buy five
    /// more guesses.
    fn apply(self, state: &mut UserState, at: &Context<'_>, _: &mut Effects) -> Self::Reply {
        let s = state.live_session(&self.sid, at.now).ok_or(SessionEnded)?;
        s.session_key = self.session_key;
        s.key_replaced_at = Some(at.now);
        Ok(())
    }
}
