#!/usr/bin/env python3
"""Exhaustive model check of the crash-tolerant cross-process semaphore of `raw::semaphore`
(`SemState`): a word {count, tag} and one record `held[i]` = (h, seq) per participant index,
with the permits of a dead participant reclaimed from its record.

Shared state, every change one CAS:
  word      (count, tag): `count` permits available; `tag` names the last operation, None or
            (index, op, seq) with op TAKE (T), GIVE (G) or RECLAIM (R)
  held[i]   (h, seq): the permits participant i holds, and the seq of the last of its
            operations applied to the record
The invariant: at most one operation is unapplied, the one the tag names; it is applied iff
held[tag.index].seq == tag.seq (before, tag.seq - 1). `applied(h)` is h + 1 for TAKE, h - 1
for GIVE, 0 for RECLAIM.

Steps, named as in the Rust code (each line one atomic step):
  An operation of participant i (TAKE: acquire through a guard, count - 1, h + 1; GIVE: the
  guard's release, count + 1, h - 1):
    load word      -> (count, tag) = w
    help read      tag unapplied? (held[tag.index].seq == tag.seq - 1; skipped if tag is None)
    help           CAS held[tag.index] (h, tag.seq - 1) -> (applied(h), tag.seq); a failure
                   means somebody applied it
                   (decide: a TAKE that saw count == 0 goes waiting, below)
    load record    own held[i] = (h, s)
    claim          CAS word w -> (count -/+ 1, (i, op, s + 1)); failure: back to load word
    apply          CAS held[i] (h, s) -> (h +/- 1, s + 1); failure: a helper applied it
  Signal release (`release()` without a guard, option `signal`): load word, help, then
    signal         CAS word w -> (count + 1, tag): the tag stays (it names an operation the
                   help just applied); no record changes. Setting the tag to None instead
                   (`signal_none`) lets a word value recur: (c, None), ..., (c, None) again,
                   and a claim or reclaim CAS that read the first then succeeds on the second
                   with a record read in between (ABA). Keeping the tag, the counts under one
                   tag only grow, and a tag (index, op, seq) is claimed once, so no word
                   value ever comes back.
  Reclaim of participant d (by a waiter, scanning the other records before each sleep; with
  `reuse`, by the new occupant of a dead index for its own index, the liveness step skipped):
    load word, help                 (r1)
    load record    held[d] = (h, s); h == 0: nothing to do           (r2)
    ask liveness   exact oracle: dead iff killed; alive: skip        (r3)
    claim          CAS word w -> (count + h, (d, R, s + 1)); failure: back to r1   (r4)
    apply          CAS held[d] (h, s) -> (0, s + 1)                  (r5)
  Waiting (a TAKE that saw count == 0): the reclaim scan over the other indices, then
    sleep          a timed slice (always enabled, spurious returns allowed): back to load word

Each of P processes runs `rounds` of acquire -> hold -> release; K permits at the start. Any
live process may be killed at any step (one kill by default, two with `crashes=2`); its
record stays as it was. Options:
  signal    one more process that does one signal release (`signal=N`: N in a row)
  reuse     a standby process that, after a kill, takes the dead process's index (its record),
            reclaims its own index's leftovers (liveness not asked: the old occupant is known
            dead), then does its rounds
  threads   processes 0 and 1 are two threads of one handle: one index, one record, one
            liveness, killed together (so `apply` must be a CAS); a third has its own index

Checks, on every state:
  tag          held[tag.index].seq is tag.seq - 1 or tag.seq (the invariant above)
  over-issue   live processes holding a permit <= K + signals done
  conservation count + sum(h) + the unapplied tag's correction (+1 TAKE, -1 GIVE, -h RECLAIM)
               == K + signals done, and no record below 0: no permit created or lost, kills
               included
  record       a live index whose occupants are all outside an operation records exactly the
               permits they hold
  at the end   (all live processes done) every permit is available or recorded in a dead
               participant's record (reclaimable later)
  progress     from every reachable state all live processes can finish (explore's check: a
               dead holder's permits must be reclaimed)

Cases: (processes, permits, rounds) = (2, 1, 1), (2, 1, 2), (3, 1, 1), (3, 2, 1); the two
3-process 2-round cases, (3, 1, 2) and (3, 2, 2), only with `big` (0.6 M and 1.5 M states,
minutes, without options). Options and `crashes=2` add to every case.

Not modelled: the reclaim of its own index by a handle being dropped (the reuse reclaim's
code with h == 0 when every guard was released); seq wrap-around (the model's seqs are
unbounded); a liveness oracle that can be wrong.

Usage: python3 semaphore_model.py [crashes=2] [big] [processes=N] [signal | signal=N] [reuse]
[threads] [MUTATION ...]; `processes=N` runs only the N-process cases (`signal=2 reuse`: 2 M
states for 2 processes, 2.5 minutes; its 3-process cases are too big). The checks hold on
every state, so most mutations are caught before any kill, at the state from which one kill
makes the loss permanent. Mutations that must be caught (and the option that catches them):
  no_help            no help step: a claim overwrites an unapplied tag, whose op is then lost
  reclaim_alive      reclaim without asking liveness: a live holder's permits are taken back
  reclaim_two_steps  reclaim CASes held[d] to (0, s + 1) first, then adds h to count in a
                     separate CAS with tag None: a kill between loses the permits
  apply_store        apply (owner's, helpers', reclaim's) is a plain store, not a CAS: a
                     stale helper's store undoes later operations
  apply_store_owner  (threads) only the owner's apply is a plain store: the other thread's
                     operation, applied in between, is overwritten
  apply_first        the owner applies to its record before its claim CAS: a phantom permit
  signal_none        (signal threads) a signal release sets the tag to None: a word recurs,
                     a stale claim succeeds (with `signal=2 reuse`: a stale reclaim)
"""
import sys

from explore import explore

MUT = set()
OPTS = set()
MAXCRASH = 1
NSIG = 1                                    # signal releases the `signal` process does
OPTION_WORDS = ('signal', 'reuse', 'threads')
MUTATIONS = ('no_help', 'reclaim_alive', 'reclaim_two_steps', 'apply_store', 'apply_store_owner',
             'apply_first', 'signal_none')


def applied(h, op):
    return h + 1 if op == 'T' else h - 1 if op == 'G' else 0


def run(P, K, rounds):
    signal, reuse, threads = 'signal' in OPTS, 'reuse' in OPTS, 'threads' in OPTS
    idx = list(range(P)) if not threads else [0, 0] + list(range(1, P - 1))
    N = max(idx) + 1                        # participant indices (records)
    # local: (pc, op, index, k = rounds done, hold = permits held, w = word seen,
    #         rec = record seen, d = index being reclaimed)
    locs0 = [('start', None, idx[p], 0, 0, None, None, None) for p in range(P)]
    SIG = STANDBY = None
    if signal:
        SIG = len(locs0)
        locs0.append(('load', 'S', None, 0, 0, None, None, None))
    if reuse:
        STANDBY = len(locs0)
        locs0.append(('standby', None, None, 0, 0, None, None, None))
    NP = len(locs0)
    # shared: (word, held, alive, crashes, signals done)
    init = (((K, None), tuple([(0, 0)] * N), tuple([True] * NP), 0, 0), tuple(locs0))

    def live(locs, alive, x):
        return any(alive[j] and locs[j][2] == x for j in range(NP))

    def others(me, d):                      # the next index a waiter's scan reclaims, or None
        for x in range(0 if d is None else d + 1, N):
            if x != me:
                return x
        return None

    def steps(st):
        (word, held, alive, crashes, sigs), locs = st
        count, tag = word
        out = []
        # kills: a process, or all live threads of one index together
        if crashes < MAXCRASH:
            done_units = set()
            for i in range(NP):
                pc, _, me = locs[i][:3]
                if not alive[i] or pc in ('done', 'standby'):
                    continue
                unit = tuple(j for j in range(NP) if alive[j] and (j == i or (me is not None and locs[j][2] == me)))
                if unit in done_units:
                    continue
                done_units.add(unit)
                a, l = list(alive), list(locs)
                for j in unit:                  # a dead process's locals: only its index counts
                    a[j] = False
                    l[j] = ('dead', None, locs[j][2], 0, 0, None, None, None)
                out.append((((word, held, tuple(a), crashes + 1, sigs), tuple(l)), 'kill ' + '+'.join(map(str, unit))))

        for i in range(NP):
            if not alive[i]:
                continue
            pc, op, me, k, hold, w, rec, d = locs[i]
            if pc == 'done':
                continue

            def mk(label, pc, op=op, me=me, k=k, hold=hold, w=None, rec=None, d=d,
                   word=word, held=held, sigs=sigs):
                l = list(locs); l[i] = (pc, op, me, k, hold, w, rec, d)
                out.append((((word, held, alive, crashes, sigs), tuple(l)), f'{i}: {label}'))

            def after_help(label, op, w, d=d, held=held):
                """The local decision after load word + help: where the operation goes on."""
                if op == 'T' and w[0] == 0:
                    x = others(me, None)
                    if x is None:
                        mk(label + ', decide wait', 'sleep', op='T', held=held, d=None)
                    else:
                        mk(label + ', decide wait', 'load', op='R', w=None, d=x, held=held)
                elif op in ('T', 'G'):
                    mk(label, 'rec', op=op, w=w, held=held)
                elif op == 'S':
                    mk(label, 'sclaim', op=op, w=w, held=held)
                else:                       # R, O: reclaim r2
                    mk(label, 'rrec', op=op, w=w, d=d, held=held)

            def load(op, label='load word'):
                if word[1] is None or 'no_help' in MUT:
                    after_help(label, op, word)
                else:
                    mk(label, 'helpread', op=op, w=word)

            def next_scan(label, held=held, word=word):
                if op == 'O':                               # own leftovers reclaimed: start
                    mk(label, 'start', op=None, d=None, held=held, word=word)
                    return
                x = others(me, d)
                if x is None:
                    mk(label, 'sleep', op='T', d=None, held=held, word=word)
                else:
                    mk(label, 'load', op='R', d=x, held=held, word=word)

            def cas_held(x, expect, new, owner=False):
                if held[x] == expect or 'apply_store' in MUT or (owner and 'apply_store_owner' in MUT):
                    hl = list(held); hl[x] = new
                    return tuple(hl), True
                return held, False

            if pc == 'standby':                             # take a dead index over
                for x in range(N):
                    if not live(locs, alive, x):
                        mk(f'take index {x}', 'load', op='O', me=x, d=x)
            elif pc == 'start':
                load('T', 'acquire: load word')
            elif pc == 'hold':
                load('G', 'release: load word')
            elif pc == 'load':
                load(op)
            elif pc == 'helpread':
                ti, top, ts = w[1]
                h, s = held[ti]
                if s == ts - 1:
                    mk(f'help read {ti}', 'helpcas', w=w, rec=(h, s))
                else:
                    after_help(f'help read {ti}: applied', op, w)
            elif pc == 'helpcas':
                ti, top, ts = w[1]
                nh, ok = cas_held(ti, rec, (applied(rec[0], top), ts))
                after_help(f'help {ti}' + ('' if ok else ' (CAS failed)'), op, w, held=nh)
            elif pc == 'rec':
                nxt = 'apply' if 'apply_first' in MUT else 'claim'
                mk('load record', nxt, w=w, rec=held[me])
            elif pc == 'claim':
                h, s = rec
                if word == w:
                    nw = (count - 1 if op == 'T' else count + 1, (me, op, s + 1))
                    if 'apply_first' in MUT:                # applied already: the op is done
                        if op == 'T':
                            mk('claim', 'hold', op=None, hold=hold + 1, word=nw)
                        else:
                            mk('claim', 'start' if k + 1 < rounds else 'done', op=None, k=k + 1, hold=hold - 1, word=nw)
                    else:
                        mk('claim', 'apply', w=w, rec=rec, word=nw, hold=hold - 1 if op == 'G' else hold)
                elif 'apply_first' in MUT:
                    mk('claim CAS failed', 'reload', rec=rec)
                else:
                    mk('claim CAS failed', 'load')
            elif pc == 'reload':                            # apply_first: retry the claim only
                mk('load word', 'claim', w=word, rec=rec)
            elif pc == 'apply':
                h, s = rec
                nh, ok = cas_held(me, rec, (applied(h, op), s + 1), owner=True)
                label = 'apply' + ('' if ok else ' (CAS failed: helped)')
                if 'apply_first' in MUT:
                    mk(label, 'claim', w=w, rec=rec, held=nh)
                elif op == 'T':
                    mk(label, 'hold', op=None, hold=hold + 1, held=nh)
                else:
                    mk(label, 'start' if k + 1 < rounds else 'done', op=None, k=k + 1, held=nh)
            elif pc == 'sclaim':
                if word == w:                               # the tag stays (see signal_none)
                    nw = (count + 1, None if 'signal_none' in MUT else tag)
                    if k + 1 < NSIG:
                        mk('signal', 'load', k=k + 1, word=nw, sigs=sigs + 1)
                    else:
                        mk('signal', 'done', op=None, k=k + 1, word=nw, sigs=sigs + 1)
                else:
                    mk('signal CAS failed', 'load')
            elif pc == 'rrec':                              # r2
                h, s = held[d]
                if h == 0:
                    next_scan(f'load record {d}: 0')
                elif op == 'O' or 'reclaim_alive' in MUT:
                    mk(f'load record {d}', 'rclaim', w=w, rec=(h, s))
                else:
                    mk(f'load record {d}', 'rlive', w=w, rec=(h, s))
            elif pc == 'rlive':                             # r3
                if live(locs, alive, d):
                    next_scan(f'ask liveness {d}: alive')
                else:
                    mk(f'ask liveness {d}: dead', 'rclaim', w=w, rec=rec)
            elif pc == 'rclaim':                            # r4
                h, s = rec
                if 'reclaim_two_steps' in MUT:
                    if held[d] == rec:
                        hl = list(held); hl[d] = (0, s + 1)
                        mk(f'reclaim record {d}', 'r2load', rec=rec, held=tuple(hl))
                    else:
                        mk(f'reclaim record {d} CAS failed', 'load')
                elif word == w:
                    mk(f'reclaim claim {d}', 'rapply', rec=rec, word=(count + h, (d, 'R', s + 1)))
                else:
                    mk(f'reclaim claim {d} CAS failed', 'load')
            elif pc == 'rapply':                            # r5
                h, s = rec
                nh, ok = cas_held(d, rec, (0, s + 1))
                next_scan(f'reclaim apply {d}' + ('' if ok else ' (CAS failed: helped)'), held=nh)
            elif pc == 'r2load':                            # reclaim_two_steps: load word
                mk('load word', 'r2word', w=word, rec=rec)
            elif pc == 'r2word':                            # reclaim_two_steps: count + h
                if word == w:
                    next_scan(f'reclaim count {d}', word=(count + rec[0], None))
                else:
                    mk('reclaim count CAS failed', 'r2load', rec=rec)
            elif pc == 'sleep':
                mk('sleep', 'load', op='T', d=None)
        return out

    def effective(word, held):
        """held with the unapplied operation (if any) applied, or an error text."""
        tag = word[1]
        hl = list(held)
        if tag is not None:
            ti, top, ts = tag
            h, s = held[ti]
            if s == ts - 1:
                hl[ti] = (applied(h, top), ts)
            elif s != ts:
                return f'tag: word names {tag}, held[{ti}] = {held[ti]}'
        return hl

    def check(st):
        (word, held, alive, crashes, sigs), locs = st
        eff = effective(word, held)
        if isinstance(eff, str):
            return eff
        holding = sum(locs[j][4] for j in range(NP) if alive[j])
        if holding > K + sigs:
            return f'over-issue: live processes hold {holding} permits, K + signals = {K + sigs}'
        if any(h < 0 for h, s in eff):
            return f'conservation: a record below 0'
        total = word[0] + sum(h for h, s in eff)
        if total != K + sigs:
            return f'conservation: count + records = {total}, K + signals = {K + sigs}'
        for x in range(N):
            occ = [j for j in range(NP) if alive[j] and locs[j][2] == x]
            if occ and all(locs[j][0] in ('start', 'hold', 'done') for j in occ):
                mine = sum(locs[j][4] for j in occ)
                if held[x][0] != mine:
                    return f'record: held[{x}] = {held[x]}, its live occupants hold {mine}'
        workers = [j for j in range(NP) if alive[j] and locs[j][0] != 'standby']
        if all(locs[j][0] == 'done' for j in workers):
            for x in range(N):
                if live(locs, alive, x) and eff[x][0] != 0:
                    return f'at the end: live index {x} records {eff[x][0]} permits'
        return None

    def finished(st, has_steps):
        (word, held, alive, crashes, sigs), locs = st
        return not has_steps and all((not alive[j]) or locs[j][0] in ('done', 'standby') for j in range(NP))

    def show(s):
        (word, held, alive, crashes, sigs), locs = s
        ls = ' '.join(f'{j}:{l[0]}' + (f'/{l[1]}' if l[1] else '') + (f'@{l[7]}' if l[7] is not None else '')
                      + f' h{l[4]}' for j, l in enumerate(locs))
        return f'word={word} held={held} sigs={sigs} | {ls}'

    r = explore(init, steps, check, finished, show)
    if isinstance(r, str):
        return r
    _, seen, good = r
    return f'ok: {len(seen)} states, {len(good)} terminal'


CASES = [(2, 1, 1), (2, 1, 2), (3, 1, 1), (3, 2, 1)]
BIG = [(3, 1, 2), (3, 2, 2)]                # with `big` (minutes, up to 1.5 M states)

if __name__ == '__main__':
    import time
    ONLY = None
    for a in sys.argv[1:]:
        if a.startswith('crashes='):
            MAXCRASH = int(a.split('=')[1])
        elif a.startswith('processes='):
            ONLY = int(a.split('=')[1])
        elif a == 'big':
            CASES += BIG
        elif a.startswith('signal='):
            NSIG = int(a.split('=')[1])
            OPTS.add('signal')
        elif a in OPTION_WORDS:
            OPTS.add(a)
        elif a in MUTATIONS:
            MUT.add(a)
        else:
            sys.exit(f'unknown argument {a!r}; options {OPTION_WORDS}, mutations {MUTATIONS}, crashes=N')
    label = ' '.join(sorted(OPTS | MUT)) or 'correct'
    failed = False
    for P, K, rounds in CASES:
        if ONLY and P != ONLY:
            continue
        t = time.time()
        r = run(P, K, rounds)
        failed |= r.startswith('VIOLATION')
        print(f'{label} crashes={MAXCRASH} processes={P} permits={K} rounds={rounds}: {r} ({time.time() - t:.1f} s)', flush=True)
        if failed:
            break
    sys.exit(1 if failed else 0)
