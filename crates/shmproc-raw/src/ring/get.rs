//! The get side of the ring: claim the position at `head`, copy out, release; step over a
//! position that holds nothing.

use super::eventcount::wake_after_store;
use super::slot::{EMPTY, FULL, Lap, SKIP, SlotWord, empty, full, next_lap, relate, taken};
use super::{
    AHEAD, ATTEMPTS, Ahead, Attempt, Block, Look, Patience, Payload, REFRESH_EVERY, RawRing, Ring, Round, after,
    block_on,
};
use crate::claims::{ClaimRecord, NONE, get_claim, put_claim};
use crate::fault;
use crate::primitive::{Ordering, fence, spin_hint};
use crate::{Liveness, Wait};
use std::time::Instant;

/// A get's claimed position.
pub(super) struct GetClaim {
    index: usize,
    lap: u32,
}

/// Why a get returned no item (the public layer turns it into its error type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GetFail {
    /// Nothing to take now (or garbled words, after [`ATTEMPTS`] steps).
    Empty,
    /// Empty for now, because a live put is still writing the head item: its publish is a
    /// plain store that wakes nobody who announced after its claim, so poll, don't sleep.
    /// Callers outside the ring report it as empty.
    Busy,
    /// The queue is closed and drained.
    Closed,
    /// The deadline passed with nothing to take.
    Timeout,
}

impl<'a> RawRing<'a> {
    /// Takes the item at the head: claims it, calls `read(index)` to copy it out of cell
    /// `index` (`index < capacity`), and releases the slot. `read` runs once and must not
    /// unwind. `mine` as in [`RawRing::put_with`].
    ///
    /// The item is counted in `mine`'s `taken` before the claim, so that a join never misses
    /// an item in flight (`models/intent_model.py`, mode `join`): items in hand are `taken` less
    /// the participant's `tasks_done`. A user that never joins (or calls `task_done`) keeps
    /// `join` waiting, by design.
    ///
    /// # Errors
    ///
    /// `Empty` (`Block::No` only), `Busy` (`Block::No` only: a live producer is still writing
    /// the head item, and FIFO waits for it), `Closed` once the queue is closed and drained,
    /// `Timeout`.
    #[inline]
    pub fn get_with<L, W, R, F>(
        &self,
        block: Block,
        read: &mut F,
        mine: &ClaimRecord,
        live: &L,
        wait: &W,
    ) -> Result<R, GetFail>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
        F: FnMut(usize) -> R,
    {
        if let Some(item) = self.get_now(read, mine, wait) {
            return Ok(item);
        }
        let deadline = match block {
            Block::No => return self.get_attempt(read, mine, live, wait, Round::Patient),
            Block::Until(deadline) => deadline,
        };
        let done = block_on(&self.control.not_empty.0, deadline, wait, |round| {
            match self.get_attempt(read, mine, live, wait, round) {
                Err(GetFail::Empty) => Attempt::Sleep,
                Err(GetFail::Busy) => Attempt::Poll,
                other => Attempt::Done(other),
            }
        });
        match done {
            Some(result) => result,
            None => Err(GetFail::Timeout),
        }
    }

    /// After claiming `h`: prefetches the cell of position `h + AHEAD` (the slot word's line
    /// for writing, when it lies in the cell), once a put has claimed that position (below
    /// `tail` as this thread last read it, `mine.seen_tail`): a cell not yet claimed is one a
    /// producer is about to write. See [`RawRing::prefetch_put`].
    #[inline(never)]
    fn prefetch_get(&self, ahead: Ahead, h: u64, mine: &ClaimRecord) {
        let p = h.wrapping_add(AHEAD);
        if after(mine.seen_tail.load(Ordering::Relaxed), p) {
            ahead.fetch(self.locate(p).0, false);
        } else if h % REFRESH_EVERY == 0 {
            // Relaxed: a hint; `tail` only grows.
            mine.seen_tail
                .store(self.control.tail.0.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    /// One bounded get attempt; `read(index)` copies the payload out of cell `index`.
    fn get_attempt<L, W, R, F>(
        &self,
        read: &mut F,
        mine: &ClaimRecord,
        live: &L,
        wait: &W,
        round: Round,
    ) -> Result<R, GetFail>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
        F: FnMut(usize) -> R,
    {
        let mut budget = ATTEMPTS;
        // `claim_get` spends the budget and fails `Empty` once it is gone.
        let claim = self.claim_get(mine, live, wait, &mut budget, round)?;
        Ok(self.finish_get(&claim, read, mine, wait))
    }

    /// The common get, inline: the slot at `head` holds a published item of its lap and the
    /// claim CAS wins; then copy out and release as [`RawRing::finish_get`] does. `None` (with
    /// `mine` as it was): anything else (empty, a writer mid-copy, closed, a lost race, a
    /// scribbled word), which the caller hands to the general path.
    ///
    /// The same steps as the general path's first round when it meets a FULL slot (model
    /// `c0`..`c6`), without its loop, rounds and patience.
    #[inline(always)]
    fn get_now<W, R, F>(&self, read: &mut F, mine: &ClaimRecord, wait: &W) -> Option<R>
    where
        W: Wait + ?Sized,
        F: FnMut(usize) -> R,
    {
        // Acquire, partner: the claim CAS that moved `head` here.
        let h = self.control.head.0.load(Ordering::Acquire);
        let claim = self.claim_full_get(h, mine)?;
        Some(self.finish_get(&claim, read, mine, wait))
    }

    /// Model `c2`, `c3`, `c3m`: if the slot of position `h` holds its lap's published item
    /// (FULL of lap `h`), announce `Get(h)` in `mine`, count the item in `mine.taken`, claim
    /// `h` by the CAS on `head` and mark the slot TAKEN. `None`, with `mine` as it was, when
    /// the slot holds anything else or the CAS fails.
    #[inline(always)]
    fn claim_full_get(&self, h: u64, mine: &ClaimRecord) -> Option<GetClaim> {
        let (index, lap) = self.locate(h);
        // Acquire, partner: the publish store. One compare decides `(Lap::Same, FULL)`:
        // `full(lap)` is the only word that decodes to it.
        if self.slot(index).load(Ordering::Acquire) != full(lap) {
            return None;
        }
        fault::point("queue.get.before_claim");
        // "record claim", then count the item in our record's `taken` (before the claim,
        // undone if it fails: a joiner that sees `head` past h then sees this count). Plain
        // stores: only this thread writes the record.
        mine.claim.store(get_claim(h), Ordering::Release);
        let count = mine.taken.load(Ordering::Relaxed);
        mine.taken.store(count.wrapping_add(1), Ordering::Release);
        if !Self::claim_index(&self.control.head.0, h) {
            mine.taken.store(count, Ordering::Release);
            mine.claim.store(NONE, Ordering::Release);
            return None;
        }
        // "mark taken" (model `c3m`): nobody else writes the slot until our release, except a
        // producer that found us dead; producers treat TAKEN and FULL of this lap alike.
        // Release: a joiner that reads the mark (Acquire) instead of the FULL word must also
        // see our `taken` count, or it would find the item neither in the ring nor in hand
        // (loom's `task_done_wakes_join` fails with a Relaxed store).
        self.slot(index).store(taken(lap), Ordering::Release);
        fault::point("queue.get.after_claim");
        if let Some(ahead) = self.ahead {
            self.prefetch_get(ahead, h, mine);
        }
        Some(GetClaim { index, lap })
    }

    /// Model `c0`..`c3`: find position `head`, announce and claim it, step over a retired
    /// position, or report Empty/Closed. A free slot at the head in a thorough or patient round
    /// goes to [`RawRing::claim_get_free_slot`] (model `ct`..`cr4`, `cc`), which may step over
    /// the position of a dead writer or report Busy. On success `mine` shows `Get(h)`;
    /// otherwise it is clear.
    ///
    /// In a [`Round::Quick`], a free slot at the head of an open ring is reported Empty
    /// without loading `tail`: that load is what tells "empty" from "claimed, not yet
    /// published", and a blocking get that made it on every spinning round would pull the
    /// producers' `tail` line away from them once per round. Other rounds load it; a
    /// [`Round::Patient`] one (`try_get`) also waits for a running producer that is still
    /// copying the head item (see [`Patience`]), so that it answers Empty only when no item
    /// is published behind a free head, or when the producer at the head is dead (stepped
    /// over) or not running.
    #[inline]
    pub(super) fn claim_get<L, W>(
        &self,
        mine: &ClaimRecord,
        live: &L,
        wait: &W,
        budget: &mut u32,
        round: Round,
    ) -> Result<GetClaim, GetFail>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
    {
        let mut patience = (round == Round::Patient).then(Patience::new);
        while *budget > 0 {
            *budget -= 1;
            // Acquire, partner: the claim CAS that moved `head` here.
            let h = self.control.head.0.load(Ordering::Acquire);
            let (index, lap) = self.locate(h);
            // Acquire, partner: the publish store.
            let raw = self.slot(index).load(Ordering::Acquire);
            let seen = SlotWord::decode(raw);
            match (relate(seen.lap, lap), seen.phase) {
                (Lap::Same, FULL) => {
                    if let Some(claim) = self.claim_full_get(h, mine) {
                        return Ok(claim);
                    }
                }
                // A put retired position h (it saw close, or its writer unwound): step over.
                (Lap::Same, SKIP) => self.step_over(h, index, lap, raw, mine, wait),
                (Lap::Same, EMPTY) => {
                    // Empty for now, or a writer is copying: either way nothing to take yet.
                    // Relaxed: a stale "open" only defers the decision.
                    if round == Round::Quick && self.control.closed.0.load(Ordering::Relaxed) == 0 {
                        return Err(GetFail::Empty);
                    }
                    let look = Look { p: h, index, lap, raw };
                    self.claim_get_free_slot(look, mine, live, wait, patience.as_mut())?;
                }
                // Position h - N not released yet: nothing can be produced at h.
                (Lap::Previous, _) => {
                    if self.control.closed.0.load(Ordering::Relaxed) == 0 {
                        return Err(GetFail::Empty);
                    }
                    let t = self.control.tail.0.load(Ordering::SeqCst);
                    self.empty_or_closed(h, index, raw, t)?;
                }
                // We read `head` before a claim that moved it, or a scribbled word: retry.
                _ => spin_hint(),
            }
        }
        Err(GetFail::Empty)
    }

    /// Model `ct`..`cr4`, `cc`, in a thorough or patient round: the slot of position `h` (the
    /// head) is free. Loads `tail`: nothing claimed at `h` means Empty (Closed once closed and
    /// drained); a position claimed and not published means Busy while its writer lives
    /// (after a patient round's wait), and is stepped over once it is dead. `Ok`: look again.
    #[cold]
    #[inline(never)]
    fn claim_get_free_slot<L, W>(
        &self,
        look: Look,
        mine: &ClaimRecord,
        live: &L,
        wait: &W,
        patience: Option<&mut Patience>,
    ) -> Result<(), GetFail>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
    {
        let Look { p: h, index, lap, raw } = look;
        // SeqCst: "load tail" is the reload of the closed check in `empty_or_closed` as well.
        let t = self.control.tail.0.load(Ordering::SeqCst);
        if !after(t, h) {
            return self.empty_or_closed(h, index, raw, t);
        }
        // Position h is claimed and not published: its writer is copying, or dead. FIFO waits
        // for a live one (polling: see `GetFail::Busy`).
        if self.changes(index, raw) {
            return Ok(());
        }
        if self.table.shows_live(put_claim(h), live, true) {
            // A running producer publishes in nanoseconds: a patient get waits, then takes
            // the item in the next round.
            if let Some(patience) = patience
                && patience.outwaits(self.slot(index), raw, wait)
            {
                return Ok(());
            }
            return Err(GetFail::Busy);
        }
        // "reload": a live writer shows `Put(h)` from before its claim until after its
        // publish, so a slot still free now means it died.
        if self.slot(index).load(Ordering::SeqCst) == raw {
            self.step_over(h, index, lap, raw, mine, wait);
        }
        Ok(())
    }

    /// Whether position `p`, claimed (below `tail`) and whose slot reads `raw` (EMPTY or SKIP
    /// of its lap), holds nothing for good: it retired, or no live record shows `Put(p)` and
    /// the slot is unchanged after the scan (model `ct`..`cr`).
    pub(super) fn holds_nothing<L: Liveness + ?Sized>(&self, p: u64, index: usize, raw: u64, live: &L) -> bool {
        SlotWord::decode(raw).phase == SKIP
            || (!self.changes(index, raw)
                && !self.table.shows_live(put_claim(p), live, true)
                && self.slot(index).load(Ordering::SeqCst) == raw)
    }

    /// Model `cc`, `cc2`: nothing at `h`; `Empty` while open, `Closed` once closed and the
    /// slot, `head` and `tail` are unchanged after the fence; `Ok` to look again.
    fn empty_or_closed(&self, h: u64, index: usize, raw: u64, t: u64) -> Result<(), GetFail> {
        if self.control.closed.0.load(Ordering::SeqCst) == 0 {
            return Err(GetFail::Empty);
        }
        // Closed. Partner: `finish_put`'s "claim; load closed". A put that read "open"
        // claimed before that load, so after this fence the reloads see its claim; nothing
        // changed means empty for good.
        fence(Ordering::SeqCst);
        if self.slot(index).load(Ordering::SeqCst) == raw
            && self.control.head.0.load(Ordering::SeqCst) == h
            && self.control.tail.0.load(Ordering::SeqCst) == t
        {
            return Err(GetFail::Closed);
        }
        Ok(())
    }

    /// Model `cr2`..`cr4`, `c6`: step over position `h`, which holds nothing (its writer died,
    /// or it retired): claim it as a get does and release it free for the next lap, with
    /// nothing delivered.
    pub(super) fn step_over<W: Wait + ?Sized>(
        &self,
        h: u64,
        index: usize,
        lap: u32,
        raw: u64,
        mine: &ClaimRecord,
        wait: &W,
    ) {
        mine.claim.store(get_claim(h), Ordering::Release);
        if Self::claim_index(&self.control.head.0, h) {
            // Guarded: the word we decided on (a put of the next lap waits for us, see
            // `claim_put`'s previous-lap rule).
            if self.slot(index).load(Ordering::Relaxed) == raw {
                self.slot(index).store(empty(next_lap(lap)), Ordering::SeqCst);
            }
            mine.claim.store(NONE, Ordering::SeqCst);
            self.control.not_full.0.wake(wait);
        } else {
            mine.claim.store(NONE, Ordering::Release);
        }
    }

    /// Model `c4`..`c6`: copy out, release, clear the record.
    #[inline(always)]
    pub(super) fn finish_get<W, R, F>(&self, claim: &GetClaim, read: &mut F, mine: &ClaimRecord, wait: &W) -> R
    where
        W: Wait + ?Sized,
        F: FnMut(usize) -> R,
    {
        let GetClaim { index, lap } = *claim;
        // Wake-ups: as in `finish_put`, with puts that wait for this slot's next lap.
        let wake = self.control.not_full.0.has_sleepers();
        // `index < capacity` (`locate`); the slot holds TAKEN(lap) (our mark over the FULL
        // word of a put whose Release store our Acquire load read), and only a producer that
        // finds no live `Get(h)` (ours shows it) frees it. `read` must not unwind
        // (crate-internal copies only): a position abandoned by a live process would block
        // the ring.
        let item = read(index);
        fault::point("queue.get.after_read");
        // Release: a plain Release store (partner: the Acquire slot load in `claim_put`).
        // Unlike the publish, it is not guarded by a load: with exact liveness nobody else
        // writes the slot after our mark, and the load would cost a line transfer whenever the
        // producer has touched the line meanwhile. Under a misjudged liveness (a scribbled
        // participant table) a producer may have freed the slot and started its next lap: our
        // copy may then be torn (a wrong answer), and this store may erase that producer's
        // item, whose position a get then steps over: the ring heals either way.
        self.slot(index).store(empty(next_lap(lap)), Ordering::Release);
        fault::point("queue.get.after_release");
        mine.claim.store(NONE, Ordering::Release);
        if cfg!(loom) {
            wake_after_store(&self.control.not_full.0, wait);
        } else if wake {
            self.control.not_full.0.wake_armed(wait);
        }
        item
    }

    /// Waits until an item is at the head (or being written there by a live producer) or the
    /// ring is closed, until `deadline`; `false` if the deadline passed first.
    pub fn wait_readable<L, W>(&self, deadline: Option<Instant>, live: &L, wait: &W) -> bool
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
    {
        block_on(&self.control.not_empty.0, deadline, wait, |_| {
            let mut found = Attempt::Sleep;
            self.scan_claimed(|p, lap, seen| {
                if self.holds_item(p, lap, seen, live) {
                    found = Attempt::Done(());
                }
                false
            });
            match found {
                _ if self.is_closed() => Attempt::Done(()),
                found => found,
            }
        })
        .is_some()
    }
}

impl<'a, P: Payload> Ring<'a, P> {
    /// Takes the item at the head if one is deliverable now (see [`RawRing::get_with`]).
    ///
    /// # Errors
    ///
    /// `Empty`, `Busy`, `Closed` once the queue is closed and drained.
    #[cfg(test)]
    pub fn try_get<L, W>(&self, mine: &ClaimRecord, live: &L, wait: &W) -> Result<P::Item, GetFail>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
    {
        self.get_item(Block::No, mine, live, wait)
    }

    /// Takes the item at the head, waiting until `deadline` (`None`: no deadline).
    ///
    /// # Errors
    ///
    /// `Closed` once the queue is closed and drained; `Timeout`.
    #[cfg(test)]
    pub fn get<L, W>(
        &self,
        deadline: Option<Instant>,
        mine: &ClaimRecord,
        live: &L,
        wait: &W,
    ) -> Result<P::Item, GetFail>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
    {
        self.get_item(Block::Until(deadline), mine, live, wait)
    }

    #[cfg(test)]
    fn get_item<L, W>(&self, block: Block, mine: &ClaimRecord, live: &L, wait: &W) -> Result<P::Item, GetFail>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
    {
        let mut out = core::mem::MaybeUninit::uninit();
        self.get_into(block, &mut out, mine, live, wait)?;
        // SAFETY: `get_into` returned `Ok`, so it wrote the item into `out`.
        Ok(unsafe { out.assume_init() })
    }

    /// Takes the item at the head into `*out`, which holds it when the result is `Ok` (after
    /// an error it may hold a copy that was dropped, see [`RawRing::get_with`]), so that a
    /// large item is copied once, out of its cell, and not moved through every caller.
    ///
    /// # Errors
    ///
    /// As [`RawRing::get_with`].
    #[inline]
    pub fn get_into<L, W>(
        &self,
        block: Block,
        out: &mut core::mem::MaybeUninit<P::Item>,
        mine: &ClaimRecord,
        live: &L,
        wait: &W,
    ) -> Result<(), GetFail>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
    {
        let payload = &self.payload;
        let mut read = |index: usize| {
            // SAFETY: `get_with` calls us with `index < capacity <= payload.len()` (`new`)
            // while we hold the claim of the position whose cell is `index`, which a put
            // published.
            unsafe { payload.read_into(index, out) }
        };
        self.raw.get_with(block, &mut read, mine, live, wait)
    }
}

/// Single steps for the conformance tests of the public queue: a participant that stops for
/// good right after its claim, as one SIGKILLed at the `queue.put.after_claim` or
/// `queue.get.after_claim` fault point does (its record keeps showing the claim).
#[cfg(any(test, feature = "testing"))]
impl RawRing<'_> {
    /// Claims the head item as `live` (counting it in `mine`'s `taken`) and returns without reading
    /// or releasing it. `false` when there was no item to claim.
    pub fn claim_get_and_stop<L, W>(&self, mine: &ClaimRecord, live: &L, wait: &W) -> bool
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
    {
        let mut budget = ATTEMPTS;
        self.claim_get(mine, live, wait, &mut budget, Round::Patient).is_ok()
    }
}
