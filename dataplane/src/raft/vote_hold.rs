//! A member back on an empty data directory in a formed group withholds its vote until it holds
//! what the group had committed when a leader first reached it: its vote would otherwise help
//! elect a member that lacks writes it acknowledged before it lost its data (a wiped voter is a
//! lost copy). Held votes cost availability only while the member catches up.

use std::sync::atomic::{AtomicU64, Ordering};

/// The member votes.
const FREE: u64 = 0;
/// The member holds its vote until a leader reaches it.
const UNTIL_HEARD: u64 = u64::MAX;

/// Whether a member refuses to vote: free, held until a leader reaches it, or held until its
/// log reaches an index.
#[derive(Debug)]
pub struct VoteHold(AtomicU64);

impl VoteHold {
    /// Held until heard from a leader when the member is `rejoining` (no log of its own, a
    /// peer already in a formed group); free otherwise.
    pub fn new(rejoining: bool) -> VoteHold {
        VoteHold(AtomicU64::new(if rejoining { UNTIL_HEARD } else { FREE }))
    }

    /// Notes an AppendEntries from a leader that had committed up to `leader_commit`: that
    /// covers everything the member could have acknowledged before it lost its data.
    pub fn heard_from_leader(&self, leader_commit: u64) {
        let _ = self.0.compare_exchange(
            UNTIL_HEARD,
            leader_commit,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }

    /// Whether the vote is still held, the member's log ending at `last_log_index`.
    pub fn held(&self, last_log_index: u64) -> bool {
        let hold = self.0.load(Ordering::SeqCst);
        if hold == FREE || hold == UNTIL_HEARD {
            return hold != FREE;
        }
        if last_log_index < hold {
            return true;
        }
        if self.0.swap(FREE, Ordering::SeqCst) != FREE {
            tracing::info!(
                index = hold,
                "caught up with the group: this member votes again"
            );
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejoining_member_votes_once_it_holds_what_the_leader_had_committed() {
        let hold = VoteHold::new(true);
        assert!(hold.held(0), "held until a leader reaches it");
        hold.heard_from_leader(7);
        hold.heard_from_leader(20);
        assert!(hold.held(6), "the first leader's commit is the bar");
        assert!(!hold.held(7));
        assert!(!hold.held(0), "once free, free for good");
        assert!(!VoteHold::new(false).held(0));
    }
}
