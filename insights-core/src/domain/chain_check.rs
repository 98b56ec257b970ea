//! Diagnosing a tenant's audit hash chain: not only *whether* it is
//! intact but *where* and *how* it was tampered with, in one pass over
//! the events in constant memory per event (two digests and a seq), so a
//! chain of millions of events can be checked page by page.
//!
//! What each kind of tampering looks like, and how it is told apart:
//!
//! * **edited**: a stored field changed, the hash left as it was, so the
//!   event no longer matches its own hash ([`ChainProblem::Edited`]).
//! * **edited and re-hashed**: the event matches its (new) hash, but its
//!   successor, or the recorded head, still links to the original hash
//!   ([`ChainProblem::Replaced`]).
//! * **deleted**: sequence numbers are missing between stored events
//!   ([`ChainProblem::Deleted`]) or after the last one, up to the head
//!   kept apart from the events ([`ChainProblem::Truncated`]).
//! * **reordered**: the sequence number is part of the hashed form, so an
//!   event stored under another event's number no longer matches its
//!   hash; it is recognised as moved (not edited) when it matches its hash
//!   again under the number of another moved or missing event
//!   ([`ChainProblem::Moved`]).
//!
//! Limit: the head lives in the same database. Someone who can rewrite
//! both the events *and* the head, recomputing every hash after their
//! change, produces a chain that verifies; comparing the printed head with
//! one recorded elsewhere earlier catches that.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::audit::{AuditEvent, GENESIS_HASH};

/// Events whose hash fails at their stored place that are tried under
/// other sequence numbers (to tell moved from edited). Beyond this many,
/// the rest are reported as edited.
const MAX_SUSPECTS: usize = 256;
/// Sequence numbers tried for each suspect event.
const MAX_CANDIDATES: usize = 4096;

/// One thing wrong with a chain. Sequence numbers are 1-based chain
/// positions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "problem", rename_all = "kebab-case")]
pub enum ChainProblem {
    /// The event's stored content no longer matches its hash.
    Edited { seq: i64 },
    /// The event matches its own hash, but the next event (or the recorded
    /// head) links to a different one: it was edited and re-hashed, or
    /// replaced.
    Replaced { seq: i64 },
    /// Events `first..=last` are missing between stored events.
    Deleted { first: i64, last: i64 },
    /// Events `first..=last` are missing at the end: the recorded head is
    /// `last`.
    Truncated { first: i64, last: i64 },
    /// The event stored under `stored_seq` is event `seq` of the chain.
    Moved { stored_seq: i64, seq: i64 },
    /// Two stored rows are the same chain position.
    Duplicated { seq: i64 },
    /// Event `seq` was given after event `after` (input not in seq order).
    OutOfOrder { seq: i64, after: i64 },
    /// Events `first..=last` come after the recorded head.
    BeyondHead { first: i64, last: i64 },
    /// Event `seq` matches its hash but does not link to its predecessor
    /// (for event 1: does not start at the genesis hash).
    LinkBroken { seq: i64 },
    /// Events exist (the last is `seq`) but no head is recorded.
    NoHead { seq: i64 },
    /// The stored event cannot even be read back (a field was made
    /// invalid).
    Unreadable { seq: i64 },
}

impl ChainProblem {
    /// The first sequence number the problem concerns (reports are
    /// ordered by it).
    pub fn seq(&self) -> i64 {
        match *self {
            ChainProblem::Edited { seq }
            | ChainProblem::Replaced { seq }
            | ChainProblem::Duplicated { seq }
            | ChainProblem::OutOfOrder { seq, .. }
            | ChainProblem::LinkBroken { seq }
            | ChainProblem::NoHead { seq }
            | ChainProblem::Unreadable { seq } => seq,
            ChainProblem::Deleted { first, .. }
            | ChainProblem::Truncated { first, .. }
            | ChainProblem::BeyondHead { first, .. } => first,
            ChainProblem::Moved { stored_seq, .. } => stored_seq,
        }
    }
}

fn range(first: i64, last: i64) -> String {
    if first == last {
        format!("event {first}")
    } else {
        format!("events {first}-{last}")
    }
}

impl fmt::Display for ChainProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ChainProblem::Edited { seq } => write!(
                f,
                "seq {seq}: edited: the stored event no longer matches its hash"
            ),
            ChainProblem::Replaced { seq } => write!(
                f,
                "seq {seq}: edited and re-hashed: the next event or the head links to the original"
            ),
            ChainProblem::Deleted { first, last } => {
                write!(f, "seq {first}: deleted: {} missing", range(first, last))
            }
            ChainProblem::Truncated { first, last } => write!(
                f,
                "seq {first}: truncated: {} missing at the end (the recorded head is event {last})",
                range(first, last)
            ),
            ChainProblem::Moved { stored_seq, seq } => write!(
                f,
                "seq {stored_seq}: reordered: the event stored here is event {seq} of the chain"
            ),
            ChainProblem::Duplicated { seq } => {
                write!(
                    f,
                    "seq {seq}: duplicated: the event is stored more than once"
                )
            }
            ChainProblem::OutOfOrder { seq, after } => {
                write!(f, "seq {seq}: out of order: listed after event {after}")
            }
            ChainProblem::BeyondHead { first, last } => write!(
                f,
                "seq {first}: added: {} come after the recorded head",
                range(first, last)
            ),
            ChainProblem::LinkBroken { seq } => write!(
                f,
                "seq {seq}: link broken: the event does not link to its predecessor"
            ),
            ChainProblem::NoHead { seq } => write!(
                f,
                "seq {seq}: no head: events exist but no chain head is recorded"
            ),
            ChainProblem::Unreadable { seq } => write!(
                f,
                "seq {seq}: edited: the stored event cannot be read back (a field is invalid)"
            ),
        }
    }
}

/// The outcome of [`ChainChecker::finish`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainReport {
    /// Stored events read.
    pub events: u64,
    /// The recorded head (seq and hash), if any.
    pub head: Option<(i64, String)>,
    /// Everything found wrong, ordered by [`ChainProblem::seq`]; empty
    /// when the chain is intact.
    pub problems: Vec<ChainProblem>,
}

impl ChainReport {
    /// No problem found.
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// A digest, decoded from the stored lower-case hex. A stored value that
/// is not 64 lower-case hex digits maps to the SHA-256 of itself under a
/// prefix: equal strings stay equal and never equal a real hash.
type Digest = [u8; 32];

fn digest(s: &str) -> Digest {
    let mut out = [0u8; 32];
    let lower_hex = s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if lower_hex && hex::decode_to_slice(s, &mut out).is_ok() {
        return out;
    }
    let mut h = Sha256::new();
    h.update(b"insights:not-a-hash\0");
    h.update(s.as_bytes());
    h.finalize().into()
}

/// What is kept per event.
#[derive(Debug)]
struct Row {
    seq: i64,
    prev: Digest,
    hash: Digest,
    /// The event matches its hash at its stored seq.
    intact: bool,
    /// Index into `suspects` when kept for the moved-or-edited test.
    suspect: Option<usize>,
    /// The event could not be read (already reported).
    unreadable: bool,
}

/// Checks a chain incrementally: [`push`](ChainChecker::push) the events
/// in the order read (ascending `seq`), then
/// [`finish`](ChainChecker::finish) with the recorded head.
#[derive(Debug, Default)]
pub struct ChainChecker {
    rows: Vec<Row>,
    suspects: Vec<AuditEvent>,
    problems: Vec<ChainProblem>,
    last_seq: Option<i64>,
}

/// How an event stands after the moved-or-edited test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Standing {
    Intact,
    Moved,
    Edited,
}

impl ChainChecker {
    /// An empty checker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the next event as read.
    pub fn push(&mut self, ev: &AuditEvent) {
        if let Some(last) = self.last_seq
            && ev.seq < last
        {
            self.problems.push(ChainProblem::OutOfOrder {
                seq: ev.seq,
                after: last,
            });
        }
        self.last_seq = Some(self.last_seq.map_or(ev.seq, |l| l.max(ev.seq)));
        let hash = digest(&ev.hash);
        let intact = digest(&ev.compute_hash()) == hash;
        let suspect = (!intact && self.suspects.len() < MAX_SUSPECTS).then(|| {
            self.suspects.push(ev.clone());
            self.suspects.len() - 1
        });
        self.rows.push(Row {
            seq: ev.seq,
            prev: digest(&ev.prev_hash),
            hash,
            intact,
            suspect,
            unreadable: false,
        });
    }

    /// Adds an event at `seq` that exists but could not be read back.
    pub fn push_unreadable(&mut self, seq: i64) {
        self.problems.push(ChainProblem::Unreadable { seq });
        self.last_seq = Some(self.last_seq.map_or(seq, |l| l.max(seq)));
        let unknown = digest("unreadable");
        self.rows.push(Row {
            seq,
            prev: unknown,
            hash: unknown,
            intact: false,
            suspect: None,
            unreadable: true,
        });
    }

    /// Finishes the check against the recorded head (`None`: no head).
    pub fn finish(self, head: Option<(i64, &str)>) -> ChainReport {
        let ChainChecker {
            mut rows,
            suspects,
            mut problems,
            ..
        } = self;
        let events = rows.len() as u64;
        rows.sort_by_key(|r| r.seq);

        // Moved or edited: try suspects under the seqs that other suspects
        // occupy and under the missing ones.
        let head_seq = head.map(|(s, _)| s);
        let candidates = candidate_seqs(&rows, head_seq);
        let mut placed: Vec<(i64, usize, Standing)> = Vec::with_capacity(rows.len());
        for (i, r) in rows.iter().enumerate() {
            if r.intact {
                placed.push((r.seq, i, Standing::Intact));
                continue;
            }
            if r.unreadable {
                placed.push((r.seq, i, Standing::Edited));
                continue;
            }
            let moved_to = r.suspect.and_then(|s| {
                let ev = &suspects[s];
                candidates.iter().copied().find(|&c| {
                    c != ev.seq && {
                        let mut probe = ev.clone();
                        probe.seq = c;
                        digest(&probe.compute_hash()) == r.hash
                    }
                })
            });
            match moved_to {
                Some(seq) => {
                    problems.push(ChainProblem::Moved {
                        stored_seq: r.seq,
                        seq,
                    });
                    placed.push((seq, i, Standing::Moved));
                }
                None => {
                    problems.push(ChainProblem::Edited { seq: r.seq });
                    placed.push((r.seq, i, Standing::Edited));
                }
            }
        }
        placed.sort_by_key(|&(seq, i, _)| (seq, i));

        // Walk the events in chain order: gaps, duplicates, links.
        let genesis = digest(GENESIS_HASH);
        let mut prev: Option<(i64, usize, Standing)> = None;
        for &(seq, i, standing) in &placed {
            let expected = prev.map_or(1, |(s, _, _)| s + 1);
            if let Some((ps, _, _)) = prev
                && seq == ps
            {
                if !problems.contains(&ChainProblem::Duplicated { seq }) {
                    problems.push(ChainProblem::Duplicated { seq });
                }
                continue;
            }
            if seq > expected {
                problems.push(ChainProblem::Deleted {
                    first: expected,
                    last: seq - 1,
                });
            }
            if standing != Standing::Edited {
                match prev {
                    Some((ps, pi, pstanding))
                        if ps + 1 == seq
                            && pstanding != Standing::Edited
                            && rows[i].prev != rows[pi].hash =>
                    {
                        problems.push(ChainProblem::Replaced { seq: ps });
                    }
                    None if seq == 1 && rows[i].prev != genesis => {
                        problems.push(ChainProblem::LinkBroken { seq: 1 });
                    }
                    _ => {}
                }
            }
            prev = Some((seq, i, standing));
        }

        // The end of the chain against the recorded head.
        let last = prev.map(|(s, _, _)| s);
        match (head, last) {
            (None, None) => {}
            (None, Some(l)) => problems.push(ChainProblem::NoHead { seq: l }),
            (Some((hs, _)), None) => {
                if hs >= 1 {
                    problems.push(ChainProblem::Truncated { first: 1, last: hs });
                }
            }
            (Some((hs, hh)), Some(l)) => {
                if hs > l {
                    problems.push(ChainProblem::Truncated {
                        first: l + 1,
                        last: hs,
                    });
                } else if hs < l {
                    let first = placed
                        .iter()
                        .map(|&(s, _, _)| s)
                        .find(|&s| s > hs)
                        .unwrap_or(l);
                    problems.push(ChainProblem::BeyondHead { first, last: l });
                }
                let at_head = placed.iter().find(|&&(s, _, _)| s == hs);
                if let Some(&(_, i, standing)) = at_head
                    && standing != Standing::Edited
                    && rows[i].hash != digest(hh)
                {
                    problems.push(ChainProblem::Replaced { seq: hs });
                }
            }
        }

        problems.sort_by_key(ChainProblem::seq);
        problems.dedup();
        ChainReport {
            events,
            head: head.map(|(s, h)| (s, h.to_owned())),
            problems,
        }
    }
}

/// Seqs a suspect event may really have: those of other suspects, and
/// those missing from `1..=max(last stored, head)`, at most
/// [`MAX_CANDIDATES`].
fn candidate_seqs(sorted: &[Row], head_seq: Option<i64>) -> Vec<i64> {
    let mut out: Vec<i64> = sorted
        .iter()
        .filter(|r| !r.intact && !r.unreadable)
        .map(|r| r.seq)
        .collect();
    let end = sorted
        .last()
        .map(|r| r.seq)
        .into_iter()
        .chain(head_seq)
        .max()
        .unwrap_or(0);
    let mut next = 1i64;
    let mut stored = sorted.iter().map(|r| r.seq).peekable();
    while next <= end && out.len() < MAX_CANDIDATES {
        while stored.next_if(|&s| s < next).is_some() {}
        if stored.peek() == Some(&next) {
            next += 1;
            continue;
        }
        out.push(next);
        next += 1;
    }
    out.truncate(MAX_CANDIDATES);
    out
}

/// Diagnoses a whole chain given in memory (see [`ChainChecker`]).
pub fn diagnose_chain(events: &[AuditEvent], head: Option<(i64, &str)>) -> ChainReport {
    let mut c = ChainChecker::new();
    for ev in events {
        c.push(ev);
    }
    c.finish(head)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::domain::{AuditAction, NewAuditEvent, TenantId};

    fn chain_of(n: usize) -> Vec<AuditEvent> {
        let t = TenantId::new();
        let mut out: Vec<AuditEvent> = Vec::new();
        for i in 0..n {
            let prev = out.last().map(|e| (e.seq, e.hash.as_str()));
            let new = NewAuditEvent {
                actor: format!("acc-{i}"),
                action: AuditAction::Search,
                recording_id: None,
                target: None,
                reason: None,
                source: None,
                details: serde_json::json!({ "i": i }),
            };
            out.push(AuditEvent::chain(t, prev, Utc::now(), new));
        }
        out
    }

    fn head(c: &[AuditEvent]) -> Option<(i64, String)> {
        c.last().map(|e| (e.seq, e.hash.clone()))
    }

    fn check(events: &[AuditEvent], head: &Option<(i64, String)>) -> Vec<ChainProblem> {
        diagnose_chain(events, head.as_ref().map(|(s, h)| (*s, h.as_str()))).problems
    }

    #[test]
    fn intact_chains_have_no_problems() {
        let c = chain_of(6);
        let r = diagnose_chain(&c, head(&c).as_ref().map(|(s, h)| (*s, h.as_str())));
        assert!(r.is_intact(), "{r:?}");
        assert_eq!(r.events, 6);
        assert!(diagnose_chain(&[], None).is_intact());
    }

    #[test]
    fn an_edit_is_reported_at_its_seq() {
        let c = chain_of(6);
        let h = head(&c);
        let mut e = c.clone();
        e[3].actor = "someone-else".into();
        assert_eq!(check(&e, &h), vec![ChainProblem::Edited { seq: 4 }]);
    }

    #[test]
    fn an_edit_with_a_recomputed_hash_is_reported_at_its_seq() {
        let c = chain_of(6);
        let h = head(&c);
        let mut e = c.clone();
        e[2].actor = "someone-else".into();
        e[2].hash = e[2].compute_hash();
        assert_eq!(check(&e, &h), vec![ChainProblem::Replaced { seq: 3 }]);
        // The last event: only the head still knows the original.
        let mut e = c.clone();
        e[5].actor = "someone-else".into();
        e[5].hash = e[5].compute_hash();
        assert_eq!(check(&e, &h), vec![ChainProblem::Replaced { seq: 6 }]);
    }

    #[test]
    fn deletions_are_reported_as_ranges() {
        let c = chain_of(8);
        let h = head(&c);
        let mut d = c.clone();
        d.drain(2..4);
        assert_eq!(
            check(&d, &h),
            vec![ChainProblem::Deleted { first: 3, last: 4 }]
        );
        let mut d = c.clone();
        d.remove(0);
        assert_eq!(
            check(&d, &h),
            vec![ChainProblem::Deleted { first: 1, last: 1 }]
        );
        let mut d = c.clone();
        d.truncate(5);
        assert_eq!(
            check(&d, &h),
            vec![ChainProblem::Truncated { first: 6, last: 8 }]
        );
        assert_eq!(
            check(&[], &h),
            vec![ChainProblem::Truncated { first: 1, last: 8 }]
        );
    }

    #[test]
    fn swapped_seqs_are_reported_as_moves() {
        let c = chain_of(6);
        let h = head(&c);
        let mut s = c.clone();
        // Swap the stored seq numbers of events 2 and 5 (what an UPDATE of
        // the seq column does), then read back in seq order.
        s[1].seq = 5;
        s[4].seq = 2;
        s.sort_by_key(|e| e.seq);
        assert_eq!(
            check(&s, &h),
            vec![
                ChainProblem::Moved {
                    stored_seq: 2,
                    seq: 5
                },
                ChainProblem::Moved {
                    stored_seq: 5,
                    seq: 2
                },
            ]
        );
        // A rotation of three.
        let mut s = c.clone();
        s[1].seq = 3;
        s[2].seq = 4;
        s[3].seq = 2;
        s.sort_by_key(|e| e.seq);
        assert_eq!(
            check(&s, &h),
            vec![
                ChainProblem::Moved {
                    stored_seq: 2,
                    seq: 4
                },
                ChainProblem::Moved {
                    stored_seq: 3,
                    seq: 2
                },
                ChainProblem::Moved {
                    stored_seq: 4,
                    seq: 3
                },
            ]
        );
    }

    #[test]
    fn a_move_into_a_deleted_place_is_told_apart() {
        let c = chain_of(6);
        let h = head(&c);
        // Event 4 deleted, event 2 renumbered 4.
        let mut s = c.clone();
        s.remove(3);
        s[1].seq = 4;
        s.sort_by_key(|e| e.seq);
        assert_eq!(
            check(&s, &h),
            vec![
                ChainProblem::Moved {
                    stored_seq: 4,
                    seq: 2
                },
                ChainProblem::Deleted { first: 4, last: 4 },
            ]
        );
    }

    #[test]
    fn head_problems_are_reported() {
        let c = chain_of(3);
        assert_eq!(check(&c, &None), vec![ChainProblem::NoHead { seq: 3 }]);
        let short = Some((2, c[1].hash.clone()));
        assert_eq!(
            check(&c, &short),
            vec![ChainProblem::BeyondHead { first: 3, last: 3 }]
        );
        let mut e = c.clone();
        e[0].prev_hash = "1".repeat(64);
        e[0].hash = e[0].compute_hash();
        // Event 1 re-hashed on a forged start: its link to the genesis and
        // event 2's link to it both break.
        assert_eq!(
            check(&e, &head(&c)),
            vec![
                ChainProblem::LinkBroken { seq: 1 },
                ChainProblem::Replaced { seq: 1 }
            ]
        );
    }

    #[test]
    fn garbage_hashes_never_match() {
        let c = chain_of(3);
        let h = head(&c);
        let mut e = c.clone();
        e[1].hash = "not a hash".into();
        // Stored hash is garbage: the event fails its own check, and the
        // link from event 3 is not blamed on anything else.
        assert_eq!(check(&e, &h), vec![ChainProblem::Edited { seq: 2 }]);
        assert_ne!(digest("XYZ"), digest("xyz"));
        assert_eq!(digest(&"a".repeat(64)), [0xaa; 32]);
    }

    #[test]
    fn unreadable_events_are_reported_alone() {
        let c = chain_of(4);
        let mut k = ChainChecker::new();
        k.push(&c[0]);
        k.push_unreadable(2);
        k.push(&c[2]);
        k.push(&c[3]);
        let h = head(&c);
        let r = k.finish(h.as_ref().map(|(s, h)| (*s, h.as_str())));
        assert_eq!(r.problems, vec![ChainProblem::Unreadable { seq: 2 }]);
        assert_eq!(r.events, 4);
    }

    #[test]
    fn problems_print_their_seq_first() {
        let p = ChainProblem::Deleted { first: 3, last: 4 };
        assert_eq!(p.to_string(), "seq 3: deleted: events 3-4 missing");
        let p = ChainProblem::Moved {
            stored_seq: 2,
            seq: 5,
        };
        assert_eq!(
            p.to_string(),
            "seq 2: reordered: the event stored here is event 5 of the chain"
        );
    }
}
