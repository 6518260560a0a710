//! The put side of the ring: claim the position at `tail`, write, publish (or retire).

use super::eventcount::wake_after_store;
use super::slot::{EMPTY, FULL, Lap, SlotWord, TAKEN, empty, full, relate, skip};
use super::{
    AHEAD, ATTEMPTS, Ahead, Attempt, BATCH_ROOM, Block, Look, Patience, Payload, REFRESH_EVERY, RawRing, Ring, Round,
    after, block_on, sc_fence_under_loom,
};
use crate::claims::{ClaimRecord, NONE, get_claim, put_claim};
use crate::fault;
use crate::primitive::{Ordering, spin_hint};
use crate::{Liveness, Wait};
#[cfg(test)]
use std::time::Instant;

/// A put's claimed position (the model's local `pos` after "claim ok").
pub(super) struct PutClaim {
    index: usize,
    lap: u32,
}

/// Why a put did not send its payload (the public layer turns it into its error type, handing
/// the item back).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutFail {
    /// No free position now.
    Full,
    /// The queue is closed.
    Closed,
    /// A peer judged this put dead and stepped over its position before the publish: the
    /// payload was not sent and the caller still has it.
    Lost,
    /// The deadline passed with no free position.
    Timeout,
}

/// Retires a put's claim if the payload writer unwinds (see `finish_put`).
struct RetireOnUnwind<'r, 'a, W: Wait + ?Sized> {
    ring: &'r RawRing<'a>,
    claim: &'r PutClaim,
    mine: &'r ClaimRecord,
    wait: &'r W,
}

impl<W: Wait + ?Sized> Drop for RetireOnUnwind<'_, '_, W> {
    fn drop(&mut self) {
        self.ring.retire(self.claim, self.mine, self.wait);
    }
}

impl<'a> RawRing<'a> {
    /// Puts one payload: claims the position at the tail, calls `write(index)` to copy the
    /// payload into cell `index` (`index < capacity`) of the caller's storage, and publishes
    /// it. `mine` is the claim word of a record that only this thread uses meanwhile (see
    /// `raw::claims`). `write` runs while nobody else reads or writes the cell (unless a peer
    /// breaks the protocol: cells in shared memory must still be copied atomically), at most
    /// once.
    ///
    /// # Errors
    ///
    /// [`PutFail::Full`] (`Block::No` only: no room, or garbled words after [`ATTEMPTS`]
    /// steps), `Closed`, `Lost` (a peer found us dead and stepped over our position before we
    /// published: only a misjudged liveness can do that), `Timeout`.
    #[inline]
    pub fn put_with<L, W, F>(
        &self,
        block: Block,
        write: &mut F,
        mine: &ClaimRecord,
        live: &L,
        wait: &W,
    ) -> Result<(), PutFail>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
        F: FnMut(usize),
    {
        if let Some(done) = self.put_now(write, mine, wait) {
            return done;
        }
        let deadline = match block {
            // `try_put` is patient: it never says Full while the queue has room, nor while a
            // running consumer is copying out of the slot it needs.
            Block::No => return self.put_attempt(write, mine, live, wait, &mut false, Round::Patient),
            Block::Until(deadline) => deadline,
        };
        // Spins a few rounds, then sleeps on the not-full eventcount; while a live get is
        // copying out of the slot we need, polls instead (its release wakes nobody).
        let mut busy = false;
        block_on(&self.control.not_full.0, deadline, wait, |round| {
            busy = false;
            match self.put_attempt(write, mine, live, wait, &mut busy, round) {
                Err(PutFail::Full) if busy => Attempt::Poll,
                Err(PutFail::Full) => Attempt::Sleep,
                other => Attempt::Done(other),
            }
        })
        .unwrap_or(Err(PutFail::Timeout))
    }

    /// After claiming `t`: prefetches, for writing, the cell of position `t + AHEAD`, which
    /// this thread will likely write next-but-[`AHEAD`] (`mine.seen_head` as the hint).
    ///
    /// Only once a get has claimed the position that cell held a lap before (`head` past it,
    /// as last read): until then it holds an item a consumer is about to read, and fetching
    /// it would take the line away from them.
    ///
    /// Why: each cell moves between the two sides' caches once per lap, and without a
    /// prefetch each side waits for every such transfer in turn, most of all while the ring is
    /// nearly full. With it the transfers of later cells overlap the copies of this one. The
    /// guard matters as much: unguarded (either side), the two sides would fetch the same
    /// lines from each other (measurements: `crates/shmproc-bench/README.md`).
    #[inline(never)]
    fn prefetch_put(&self, ahead: Ahead, t: u64, mine: &ClaimRecord) {
        let p = t.wrapping_add(AHEAD);
        if after(mine.seen_head.load(Ordering::Relaxed), p.wrapping_sub(self.cap)) {
            ahead.fetch(self.locate(p).0, true);
        } else if t % REFRESH_EVERY == 0 {
            // Relaxed: a hint. `head` only grows, so an old value errs on the safe side.
            mine.seen_head
                .store(self.control.head.0.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    /// One bounded put attempt; `write(index)` copies the payload into cell `index` (see
    /// [`RawRing::put_with`]).
    ///
    /// Sets `busy` when it fails `Full` because a live get is copying out of the slot (of the
    /// previous lap): that get's release is a plain store that wakes nobody who announced
    /// after its claim, so a blocked put polls instead of sleeping.
    fn put_attempt<L, W, F>(
        &self,
        write: &mut F,
        mine: &ClaimRecord,
        live: &L,
        wait: &W,
        busy: &mut bool,
        round: Round,
    ) -> Result<(), PutFail>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
        F: FnMut(usize),
    {
        // A put that finds the queue closed before claiming takes no effect: it is "after
        // close" (the model's early look in `close_anytime`). Relaxed: a stale "open" only
        // defers the decision to the look after the claim.
        if self.control.closed.0.load(Ordering::Relaxed) != 0 {
            return Err(PutFail::Closed);
        }
        let claim = self.claim_put(mine, live, wait, busy, round)?;
        self.finish_put(&claim, write, mine, wait)
    }

    /// The common put, inline: the slot at `tail` is free for its lap and the claim CAS wins;
    /// then write and publish as [`RawRing::finish_put`] does. `None` (with `mine` clear and
    /// nothing changed): anything else (closed, full, a lost race, a scribbled word), which
    /// the caller hands to the general path.
    ///
    /// The same steps as the general path's first round when it meets a free slot (model
    /// `p0`..`p6`), without its loop, rounds and patience: each put that finds room makes
    /// only these loads, stores and one CAS.
    #[inline(always)]
    fn put_now<W, F>(&self, write: &mut F, mine: &ClaimRecord, wait: &W) -> Option<Result<(), PutFail>>
    where
        W: Wait + ?Sized,
        F: FnMut(usize),
    {
        // As in `put_attempt`: a put that sees `closed` takes the general path, which fails.
        if self.control.closed.0.load(Ordering::Relaxed) != 0 {
            return None;
        }
        // Acquire, partner: the claim CAS that moved `tail` here.
        let t = self.control.tail.0.load(Ordering::Acquire);
        let claim = self.claim_free_put(t, mine)?;
        Some(self.finish_put(&claim, write, mine, wait))
    }

    /// Model `p2`, `p3`: if the slot of position `t` is free for its lap (EMPTY of lap `t`),
    /// announce `Put(t)` in `mine` and claim `t` by the CAS on `tail`. `None`, with `mine`
    /// clear, when the slot holds anything else or the CAS fails.
    #[inline(always)]
    fn claim_free_put(&self, t: u64, mine: &ClaimRecord) -> Option<PutClaim> {
        let (index, lap) = self.locate(t);
        // Partner: the release (or repair) store that freed the slot for lap t. One compare
        // decides `(Lap::Same, EMPTY)`: `empty(lap)` is the only word that decodes to it.
        if self.slot(index).load(Ordering::Acquire) != empty(lap) {
            return None;
        }
        fault::point("queue.put.before_claim");
        // "record claim": before the claim, so that a get that sees `tail > t` and a free
        // slot finds it while we live (Release, read with Acquire after the get's Acquire load
        // of `tail`).
        mine.claim.store(put_claim(t), Ordering::Release);
        if !Self::claim_index(&self.control.tail.0, t) {
            mine.claim.store(NONE, Ordering::Release);
            return None;
        }
        fault::point("queue.put.after_claim");
        if let Some(ahead) = self.ahead {
            self.prefetch_put(ahead, t, mine);
        }
        Some(PutClaim { index, lap })
    }

    /// Model `p0`..`p3`: find position `tail`, announce and claim it, or report Full. A slot
    /// that still holds the previous lap (model `pf`..`pr`) goes to
    /// [`RawRing::claim_put_previous_lap`], which may free a slot whose reader died or set
    /// `busy` when a live get holds the slot (see [`RawRing::put_attempt`]). On success `mine`
    /// shows `Put(t)`; otherwise it is clear.
    ///
    /// In a [`Round::Quick`] (a blocking put's spinning rounds but one in
    /// [`THOROUGH_EVERY`](super::THOROUGH_EVERY)), a slot that still holds the previous lap is
    /// reported Full without loading `head`, as a get does with `tail` (see
    /// [`RawRing::claim_get`]): a producer polling a full queue would otherwise pull the
    /// consumers' `head` line away from them on every round. `try_put` is patient, so that it
    /// never answers Full while a dead consumer's slot is all that stands in the way, nor while
    /// a running consumer is copying out of it (see [`Patience`]).
    #[inline]
    pub(super) fn claim_put<L, W>(
        &self,
        mine: &ClaimRecord,
        live: &L,
        wait: &W,
        busy: &mut bool,
        round: Round,
    ) -> Result<PutClaim, PutFail>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
    {
        let mut patience = (round == Round::Patient).then(Patience::new);
        for _ in 0..ATTEMPTS {
            // Acquire, partner: the claim CAS that moved `tail` here.
            let t = self.control.tail.0.load(Ordering::Acquire);
            if round == Round::Quick && !self.room_for_batch(t) {
                return Err(PutFail::Full);
            }
            let (index, lap) = self.locate(t);
            // Partner: the release (or repair) store that freed the slot for lap t.
            let raw = self.slot(index).load(Ordering::Acquire);
            let seen = SlotWord::decode(raw);
            match (relate(seen.lap, lap), seen.phase) {
                (Lap::Same, EMPTY) => {
                    if let Some(claim) = self.claim_free_put(t, mine) {
                        return Ok(claim);
                    }
                }
                // A get is copying position t - N out (it marked the slot TAKEN after its
                // claim): it releases in nanoseconds, so re-read rather than leave the loop
                // (bounded by ATTEMPTS; a thorough round looks for a dead reader).
                (Lap::Previous, TAKEN) if round == Round::Quick => spin_hint(),
                // Position t - N is not released yet (FULL, or claimed by a put or a step-over
                // that has not finished): full, or a get holds it.
                (Lap::Previous, _) if round == Round::Quick => return Err(PutFail::Full),
                (Lap::Previous, _) => {
                    let look = Look { p: t, index, lap, raw };
                    self.claim_put_previous_lap(look, mine, live, wait, busy, patience.as_mut())?;
                }
                // We read `tail` before a claim that moved it, or a scribbled word: retry.
                _ => spin_hint(),
            }
        }
        Err(PutFail::Full)
    }

    /// Whether the slot of position `t + k` no longer holds the previous lap, with `k` =
    /// [`BATCH_ROOM`] or a quarter of the capacity, whichever is less: then the gets have
    /// passed `t + k - N`, and there is room for a batch of puts. `true` for a capacity below
    /// 4.
    ///
    /// Why: a put that finds the ring full waits for the consumers, and the slot it needs is
    /// the one a get has just released, or is still copying out of, in the line that get is
    /// working on. Re-reading it in every spinning round pulls that line away from the get,
    /// once per round and per waiting producer (`crates/shmproc-bench/README.md`, "A full
    /// ring: room for a batch"). The slot `k` positions on lies lines ahead of the gets. It
    /// is a hint: a thorough round (one in [`THOROUGH_EVERY`](super::THOROUGH_EVERY)) and the
    /// last attempt before sleeping look at the put's own slot whatever this says, so a put
    /// never sleeps while its slot is free, and one freed slot is taken within 16 rounds while
    /// the ring stays full.
    #[inline]
    pub(super) fn room_for_batch(&self, t: u64) -> bool {
        let k = (self.cap / 4).min(BATCH_ROOM);
        if k == 0 {
            return true;
        }
        let (index, lap) = self.locate(t.wrapping_add(k));
        // Relaxed: a hint; the claim reads the put's own slot with Acquire.
        let seen = SlotWord::decode(self.slot(index).load(Ordering::Relaxed));
        relate(seen.lap, lap) != Lap::Previous
    }

    /// Model `pf`..`pr`, in a thorough or patient round: the slot of position `t` still holds
    /// position `t - N` (FULL or TAKEN, or claimed by a put or a step-over that has not
    /// finished). Full if no get has claimed `t - N` (unless it is the head and holds
    /// nothing: then the put steps over it); Full and `busy` while a live get holds it
    /// (after a patient round's wait); a dead get's slot is freed. `Ok`: look again.
    #[cold]
    #[inline(never)]
    fn claim_put_previous_lap<L, W>(
        &self,
        look: Look,
        mine: &ClaimRecord,
        live: &L,
        wait: &W,
        busy: &mut bool,
        patience: Option<&mut Patience>,
    ) -> Result<(), PutFail>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
    {
        let Look { p: t, index, lap, raw } = look;
        let phase = SlotWord::decode(raw).phase;
        // A TAKEN slot is being read out: wait for the release a little before looking at
        // `head` (the consumers' line) and the records.
        if phase == TAKEN && self.changes(index, raw) {
            return Ok(());
        }
        let h = self.control.head.0.load(Ordering::SeqCst);
        let before = t.wrapping_sub(self.cap);
        // "load head: full": no get has claimed t - N. The get that claims it sees a sleeper
        // that announced before that claim.
        if !after(h, before) {
            // Beyond the model's producers: if t - N is the head and holds nothing (retired,
            // or its writer died), step over it as a get would (the model's `cr2`..`cr4`,
            // with our record showing `Get(t - N)`), so a dead producer's position does not
            // take room until a get passes.
            if h == before && phase != FULL && self.holds_nothing(before, index, raw, live) {
                self.step_over(before, index, self.locate(before).1, raw, mine, wait);
                return Ok(());
            }
            return Err(PutFail::Full);
        }
        // A get claimed t - N and has not released it: wait while it lives.
        if self.changes(index, raw) {
            return Ok(());
        }
        if self.table.shows_live(get_claim(before), live, true) {
            // A running consumer releases in nanoseconds: a patient put waits.
            if let Some(patience) = patience
                && patience.outwaits(self.slot(index), raw, wait)
            {
                return Ok(());
            }
            *busy = true;
            return Err(PutFail::Full);
        }
        // "repair reader": its reader died (one item lost, as in the model).
        if self.cas_slot(index, raw, empty(lap)) {
            self.control.not_full.0.wake(wait);
        }
        Ok(())
    }

    /// Model `pcc`..`p6`: check `closed`, write, publish (or retire), clear the record.
    #[inline(always)]
    pub(super) fn finish_put<W, F>(
        &self,
        claim: &PutClaim,
        write: &mut F,
        mine: &ClaimRecord,
        wait: &W,
    ) -> Result<(), PutFail>
    where
        W: Wait + ?Sized,
        F: FnMut(usize),
    {
        let PutClaim { index, lap, .. } = *claim;
        // Partner: `close`'s store and `claim_get`'s "load closed; fence; reload". Our claim
        // CAS precedes this load in S: if we read "open", a consumer that reads "closed"
        // afterwards sees `tail` past our position when it reloads.
        sc_fence_under_loom();
        if self.control.closed.0.load(Ordering::SeqCst) != 0 {
            self.retire(claim, mine, wait);
            return Err(PutFail::Closed);
        }
        // Wake-ups: a get that announced itself before our claim CAS is seen here; one that
        // announces later sees `tail` past a free slot when it re-checks, and polls.
        let wake = self.control.not_empty.0.has_sleepers();
        // `index < capacity` (`locate`), and nobody else touches the cell until we publish:
        // a get steps over our position only if no live record shows `Put(t)`, and ours does.
        // If `write` unwinds, the guard retires the position as a put that saw close does.
        let guard = RetireOnUnwind {
            ring: self,
            claim,
            mine,
            wait,
        };
        write(index);
        core::mem::forget(guard);
        fault::point("queue.put.after_write");
        // Publish: a Release store, guarded by a load. Only a step-over could have changed the
        // slot, which needs us dead, so with exact liveness the guard never fails; it narrows
        // the damage of a misjudged liveness to the window between the load and the store.
        // Partner: the Acquire slot load before `claim_get`'s CAS.
        let published = self.slot(index).load(Ordering::Relaxed) == empty(lap);
        if published {
            self.slot(index).store(full(lap), Ordering::Release);
            fault::point("queue.put.after_publish");
        }
        // "clear record": after the publish (Release: a scanner that reads it cleared reads
        // the publish too).
        mine.claim.store(NONE, Ordering::Release);
        if !published {
            return Err(PutFail::Lost);
        }
        if cfg!(loom) {
            wake_after_store(&self.control.not_empty.0, wait);
        } else if wake {
            self.control.not_empty.0.wake_armed(wait);
        }
        Ok(())
    }

    /// Retire (model `pret`, `puw`): mark our claimed position SKIP, so that gets step over
    /// it, clear the record, and wake everyone who might wait on that position.
    #[cold]
    #[inline(never)]
    fn retire<W: Wait + ?Sized>(&self, claim: &PutClaim, mine: &ClaimRecord, wait: &W) {
        // Guarded as the publish is (the slot can only hold our lap's EMPTY).
        if self.slot(claim.index).load(Ordering::Relaxed) == empty(claim.lap) {
            self.slot(claim.index).store(skip(claim.lap), Ordering::SeqCst);
        }
        mine.claim.store(NONE, Ordering::SeqCst);
        // A get polling on our position, a put waiting on it as the previous lap, and a joiner
        // counting it as live all need another look (close's wake may have come first).
        self.control.not_empty.0.wake(wait);
        self.control.not_full.0.wake(wait);
        self.control.tasks.0.wake(wait);
    }
}

impl<'a, P: Payload> Ring<'a, P> {
    /// Puts `item` if there is room now.
    ///
    /// # Errors
    ///
    /// `Full`: no room (or garbled words, after [`ATTEMPTS`] steps); `Closed`; `Lost`: a peer
    /// found us dead and stepped over our position before we published.
    #[cfg(test)]
    pub fn try_put<L, W>(&self, item: P::Item, mine: &ClaimRecord, live: &L, wait: &W) -> Result<(), PutFail>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
    {
        self.put_ref(Block::No, &item, mine, live, wait)
    }

    /// Puts `item`, waiting for room until `deadline` (`None`: no deadline).
    ///
    /// # Errors
    ///
    /// As [`Ring::try_put`] without `Full`, plus `Timeout`.
    #[cfg(test)]
    pub fn put<L, W>(
        &self,
        item: P::Item,
        deadline: Option<Instant>,
        mine: &ClaimRecord,
        live: &L,
        wait: &W,
    ) -> Result<(), PutFail>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
    {
        self.put_ref(Block::Until(deadline), &item, mine, live, wait)
    }

    /// Puts a copy of `*item`; the caller keeps the item (and hands it back with a failure),
    /// so a large item is copied once, into its cell.
    ///
    /// # Errors
    ///
    /// As [`RawRing::put_with`].
    #[inline]
    pub fn put_ref<L, W>(
        &self,
        block: Block,
        item: &P::Item,
        mine: &ClaimRecord,
        live: &L,
        wait: &W,
    ) -> Result<(), PutFail>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
    {
        let payload = &self.payload;
        let len = payload.len();
        let mut write = |index: usize| {
            debug_assert!(index < len);
            // SAFETY: `put_with` calls us with `index < capacity <= payload.len()` (`new`)
            // while we hold the claim of the position whose cell is `index`.
            unsafe { payload.write(index, item) }
        };
        self.raw.put_with(block, &mut write, mine, live, wait)
    }
}

/// Single steps for the conformance tests of the public queue: a participant that stops for
/// good right after its claim, as one SIGKILLed at the `queue.put.after_claim` or
/// `queue.get.after_claim` fault point does (its record keeps showing the claim).
#[cfg(any(test, feature = "testing"))]
impl RawRing<'_> {
    /// Claims the tail position as `live`, announced in `mine`, and returns without writing
    /// or publishing it. `false` when there was no room to claim.
    pub fn claim_put_and_stop<L, W>(&self, mine: &ClaimRecord, live: &L, wait: &W) -> bool
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
    {
        self.claim_put(mine, live, wait, &mut false, Round::Patient).is_ok()
    }
}
