//! The slot word: one `u64` per slot that says whose turn the slot is (its phase) and for which
//! lap of the ring, and how a slot's lap relates to the lap of the position being looked at.

use crate::primitive::AtomicU64;

/// Phase: nothing at this position of this lap yet (or claimed by a put that is writing it).
pub(super) const EMPTY: u32 = 0;
/// Phase: published, waiting for a get (or claimed by a get that is copying it out).
pub(super) const FULL: u32 = 2;
/// Phase: taken by a get that is copying the item out (a mark the get stores right after its
/// claim CAS, so that its slot line is its own while it copies: the release store then does
/// not wait for the line; model mode `taken_mark`). Producers treat it as FULL of its lap.
pub(super) const TAKEN: u32 = 3;
/// Phase: a put retired this position (it saw close, or its writer unwound); gets step over.
pub(super) const SKIP: u32 = 4;
/// A phase this code never writes (1, 5, 6, 7): the word was scribbled.
pub(super) const GARBLED: u32 = 7;

const PHASE_MASK: u64 = 0b111;
const LAP_SHIFT: u32 = 3;
const LAP_BITS: u32 = 29;
pub(super) const LAP_MASK: u32 = (1 << LAP_BITS) - 1;
/// Laps ahead by at most this much are "later"; further is "stale" (see [`relate`]).
const LAP_HALF: u32 = 1 << (LAP_BITS - 1);

/// One slot's word in shared memory.
///
/// | bits    | field | meaning                                                          |
/// |---------|-------|------------------------------------------------------------------|
/// | 0..3    | phase | EMPTY 0, FULL 2, TAKEN 3, SKIP 4; anything else was scribbled     |
/// | 3..32   | lap   | `position / capacity` modulo 2^29                                |
/// | 32..64  | 0     | always 0; any other value was scribbled (GARBLED)                |
///
/// All-zero bytes are EMPTY, lap 0: the initial state of position `index`. Laps are compared
/// modulo 2^29 ([`relate`]), so a process would have to stall for about 2^28 laps of the ring
/// for a lap to be misjudged (the ABA bound of this design).
#[repr(C)]
pub struct Slot {
    pub(super) word: AtomicU64,
}

impl Slot {
    /// An EMPTY slot of lap 0 (the same as all-zero bytes).
    pub fn new() -> Slot {
        Slot {
            word: AtomicU64::new(0),
        }
    }
}

impl Default for Slot {
    fn default() -> Slot {
        Slot::new()
    }
}

/// A slot word decoded into a local (never trusted beyond its masks).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) struct SlotWord {
    pub(super) phase: u32,
    pub(super) lap: u32,
}

impl SlotWord {
    pub(super) fn decode(raw: u64) -> SlotWord {
        let phase = (raw & PHASE_MASK) as u32;
        SlotWord {
            // Unknown phases, and any word with the high half set, come from a scribbling
            // peer: every rule retries on them (bounded by `ATTEMPTS`).
            phase: if raw >> 32 != 0 || !matches!(phase, EMPTY | FULL | TAKEN | SKIP) {
                GARBLED
            } else {
                phase
            },
            lap: (raw >> LAP_SHIFT) as u32 & LAP_MASK,
        }
    }

    pub(super) fn encode(phase: u32, lap: u32) -> u64 {
        (u64::from(lap & LAP_MASK) << LAP_SHIFT) | u64::from(phase)
    }
}

pub(super) fn empty(lap: u32) -> u64 {
    SlotWord::encode(EMPTY, lap)
}
pub(super) fn full(lap: u32) -> u64 {
    SlotWord::encode(FULL, lap)
}
pub(super) fn skip(lap: u32) -> u64 {
    SlotWord::encode(SKIP, lap)
}
pub(super) fn taken(lap: u32) -> u64 {
    SlotWord::encode(TAKEN, lap)
}
pub(super) fn next_lap(lap: u32) -> u32 {
    lap.wrapping_add(1) & LAP_MASK
}

/// How a slot's lap relates to the lap of the position being looked at.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Lap {
    Same,
    /// One lap behind: the previous occupant of this slot is not done yet.
    Previous,
    /// Ahead: the position was already consumed (or retired) and the slot reused.
    Later,
    /// Further behind than the previous lap: impossible unless a word was scribbled.
    Stale,
}

pub(super) fn relate(slot_lap: u32, position_lap: u32) -> Lap {
    match slot_lap.wrapping_sub(position_lap) & LAP_MASK {
        0 => Lap::Same,
        LAP_MASK => Lap::Previous,
        1..=LAP_HALF => Lap::Later,
        _ => Lap::Stale,
    }
}
