#!/usr/bin/env python3
"""Exhaustive model check of the two cross-process wake-up primitives: the event (`raw::event`,
`EventState`) and the condition variable (`raw::condvar`, `CondState`), with futexes modelled
exactly and processes killed at any step.

Futexes: `futex_wait(word, expected)` is one atomic step that returns at once (word !=
expected) or puts the process to sleep on the word; `wake_all(word)` / `wake_one(word)` wakes
the sleepers on it (a killed process sleeps nowhere; `wake_one` may pick any sleeper, each
choice is explored). A sleeper may also return on a timed slice, but the model allows that
step only once some process has been killed: slices exist to survive the dead, and without
kills no wake-up may depend on them, so liveness means "no lost wake-up". With `strict`, only
the death of a waker (the event's setter, a notifier) enables slices: a killed waiter or
clearer must then cost the others nothing.

`event`: word = (set, waiters, gen mod 4).
  set     `set CAS` (a CAS loop: one atomic step): already set -> nothing; else (set, no
          waiters, gen+1); then, if the old word had waiters, `wake_all`.
  clear   `clear CAS`: set -> (not set, same waiters, same gen); not set -> nothing.
  wait    loop { `load word` (the first load notes gen): set -> true; gen != first gen ->
          true (a set happened since, true even if cleared again); waiters off -> `set
          waiters` CAS (failed -> loop); `futex_wait`(word, the word with waiters) }.
  Processes: 1 to 3 waiters, a setter (sets once), with `clear` a clearer (clears once).
  Checks: a waiter returns true only when the event was set at its first load or a set
  happened since (no false true); liveness: every live waiter that was waiting when a set
  happened returns true (and a waiter that no set reached may wait for ever).

`condition` over a lock (a plain mutex here, taken over from a dead owner; its own crash
protocol is lock_model.py's): seq (notify counter), waiters (count of waiting processes).
  wait    (holding the lock, while the predicate is false) c1 `count waiter` (waiters += 1),
          c2 `read seq` s, c3 `unlock`, c4 `futex_wait`(seq, s), c5 `relock`, c6 `uncount`
          (waiters -= 1), then the predicate again.
  notify  n1 `load waiters`: 0 -> return; n2 `bump seq`; n3 `wake_one` / `wake_all` on seq.
  Waiters lock, wait while the predicate is false, then (count mode) consume one item, unlock
  and finish. Notifiers lock, set the flag (flag mode) or add an item (count mode), and
  notify either inside the lock or after the unlock (each notifier picks, both are explored).
  Cases (waiters, notifiers): flag + notify_all (1,1) (2,1) (2,2); count + notify_one (1,1)
  (2,1) (2,2); count + notify_all (2,1) (2,2).
  Checks: liveness: every live waiter finishes unless its predicate stays false (a notifier
  killed before its write, a killed waiter's consumed item); the lock is held where the
  protocol says so.
  `strict` finds one hole: notify_one's wake_one can pick a waiter that is then killed before
  it relocks; the other sleepers sleep on with the predicate true until their slice (2
  waiters, 1 notifier, count + notify_one). Fix if one slice of delay after such a death is
  not acceptable: `one_wakes_all` (notify_one bumps seq and wakes every sleeper; all but one
  find the predicate consumed and wait again).

Liveness is checked here (`explore_live`), not by explore's own check, which lets a kill of
the one stuck process count as its finishing.

Usage: python3 signal_model.py event|condition [crashes=2] [clear] [strict] [one_wakes_all]
[MUTATION ...]
Mutations that must be caught:
  event:      wake_first            the setter wakes before its CAS (lost wake-up)
              no_gen                waiters look only at the set flag (set then clear before
                                    a woken waiter looks: it sleeps for ever); needs `clear`
              clear_drops_waiters   clear stores (not set, no waiters) whatever the word held:
                                    a sleeper's waiters flag is lost, the set skips the wake;
                                    needs `clear`
              waiters_store         the waiters flag set by a plain store, not a CAS: it can
                                    overwrite a set
  condition:  read_seq_after_unlock c2 after c3 (lost wake-up)
              count_after_unlock    c1 after c3 (notify sees 0 waiters and skips)
              notify_one_no_bump    notify_one wakes without bumping seq
"""
import sys
import time

from explore import explore, explore_live, report

MUT = set()
OPT = set()
MAXCRASH = 1
GEN = 4


# ---------------------------------------------------------------------------------------- event
def run_event(W):
    # shared: (word (set, waiters, gen), alive, crashes, waker killed)
    # waiter local: (pc, first gen or None, seen word, justified, outcome)
    # setter local: (pc,), clearer local: (pc,)
    setter = W
    clearer = W + 1 if 'clear' in OPT else None
    P = W + (2 if clearer is not None else 1)
    init = ((False, False, 0), tuple([True] * P), 0, False)
    locs0 = tuple([('e1', None, None, False, None)] * W + [('s0' if 'wake_first' in MUT else 's1',)]
                  + ([('c1',)] if clearer is not None else []))

    def steps(st):
        (word, alive, crashes, wk), locs = st
        wset, wwait, wgen = word
        out = []
        for i in range(P):
            if not alive[i] or locs[i][0] == 'done':
                continue
            if crashes < MAXCRASH:
                a = list(alive); a[i] = False
                out.append((((word, tuple(a), crashes + 1, wk or i == setter or 'strict' not in OPT), locs), f'kill {i}'))

            def mk(nloc, label, word=word, others=None):
                l = list(locs); l[i] = nloc
                if others:
                    for j, lj in others.items():
                        l[j] = lj
                return (((word, alive, crashes, wk), tuple(l)), f'{label} {i}')

            def wake_all(word=word):
                return {j: ('e1', locs[j][1], None) + locs[j][3:] for j in range(W) if alive[j] and locs[j][0] == 'sleep'}

            pc = locs[i][0]
            if i < W:
                _, g0, seen, just, res = locs[i]
                if pc == 'e1':                              # load word
                    if g0 is None:
                        g0, just = wgen, wset
                    if wset:
                        out.append(mk(('done', g0, None, just, True), 'load word: set'))
                    elif wgen != g0 and 'no_gen' not in MUT:
                        out.append(mk(('done', g0, None, just, True), 'load word: gen moved'))
                    elif not wwait:
                        out.append(mk(('e2', g0, word, just, None), 'load word'))
                    else:
                        out.append(mk(('e3', g0, word, just, None), 'load word'))
                elif pc == 'e2':                            # set waiters
                    nw = (seen[0], True, seen[2])
                    if 'waiters_store' in MUT:
                        out.append(mk(('e3', g0, nw, just, None), 'store waiters', word=nw))
                    elif word == seen:
                        out.append(mk(('e3', g0, nw, just, None), 'set waiters', word=nw))
                    else:
                        out.append(mk(('e1', g0, None, just, None), 'set waiters CAS failed'))
                elif pc == 'e3':                            # futex_wait(word, seen)
                    if word != seen:
                        out.append(mk(('e1', g0, None, just, None), 'futex_wait: changed'))
                    else:
                        out.append(mk(('sleep', g0, seen, just, None), 'futex_wait: sleep'))
                elif pc == 'sleep':
                    if wk:
                        out.append(mk(('e1', g0, None, just, None), 'slice'))
            elif i == setter:
                if pc == 's0':                              # mutation: wake before the CAS
                    out.append(mk(('s1',), 'wake_all', others=wake_all()))
                elif pc == 's1':                            # set CAS
                    if wset:
                        out.append(mk(('done',), 'set CAS: already set'))
                    else:
                        nw = (True, False, (wgen + 1) % GEN)
                        # every waiter waiting now saw a set happen
                        oth = {j: locs[j][:3] + (True, locs[j][4]) for j in range(W)
                               if locs[j][0] != 'done' and locs[j][1] is not None}
                        nxt = 's2' if wwait and 'wake_first' not in MUT else 'done'
                        out.append(mk((nxt,), 'set CAS', word=nw, others=oth))
                elif pc == 's2':
                    out.append(mk(('done',), 'wake_all', others=wake_all()))
            else:
                if pc == 'c1':                              # clear CAS
                    if 'clear_drops_waiters' in MUT:
                        out.append(mk(('done',), 'clear store', word=(False, False, wgen)))
                    elif wset:
                        out.append(mk(('done',), 'clear CAS', word=(False, wwait, wgen)))
                    else:
                        out.append(mk(('done',), 'clear: not set'))
        return out

    def check(st):
        (word, alive, crashes, wk), locs = st
        for j in range(W):
            if locs[j][4] is True and not locs[j][3]:
                return f'waiter {j} returned true, but no set happened while it waited (false true)'
        return None

    def finished(st, has_steps):
        (word, alive, crashes, wk), locs = st
        for i in range(W, P):
            if alive[i] and locs[i][0] != 'done':
                return False
        # a waiter that no set reached may wait for ever
        return all(not alive[j] or locs[j][0] == 'done' or not locs[j][3] for j in range(W))

    def show(s):
        (word, alive, crashes, wk), locs = s
        return f'word={word} alive={alive} locs={locs}'

    return explore_live((init, locs0), steps, check, finished, show)


# ------------------------------------------------------------------------------------ condition
def run_condition(W, Nn, mode, how):
    # mode: 'flag' or 'count'; how: 'one' or 'all'
    # shared: (lock owner or -1, seq, waiters, pred, alive, crashes, waker killed)
    # waiter local: (pc, s); notifier local: (pc, inside)
    P = W + Nn
    if 'read_seq_after_unlock' in MUT:
        order = ['c1', 'c3', 'c2']
    elif 'count_after_unlock' in MUT:
        order = ['c2', 'c3', 'c1']
    else:
        order = ['c1', 'c2', 'c3']
    after = dict(zip(order, order[1:] + ['c4']))
    init = (-1, 0, 0, 0, tuple([True] * P), 0, False)
    locs0 = tuple([('lock', None)] * W + [('lock', None)] * Nn)

    def steps(st):
        (lock, seq, waiters, pred, alive, crashes, wk), locs = st
        out = []
        free = lock == -1 or not alive[lock]                # a dead owner's lock is taken over
        for i in range(P):
            if not alive[i] or locs[i][0] == 'done':
                continue
            if crashes < MAXCRASH:
                a = list(alive); a[i] = False
                out.append((((lock, seq, waiters, pred, tuple(a), crashes + 1, wk or i >= W or 'strict' not in OPT), locs), f'kill {i}'))

            def mk(nloc, label, lock=lock, seq=seq, waiters=waiters, pred=pred, others=None):
                l = list(locs); l[i] = nloc
                if others:
                    for j, lj in others.items():
                        l[j] = lj
                return (((lock, seq, waiters, pred, alive, crashes, wk), tuple(l)), f'{label} {i}')

            pc, x = locs[i]
            if i < W:                                       # a waiter
                if pc == 'lock':
                    if free:
                        out.append(mk(('pred', None), 'lock', lock=i))
                elif pc == 'pred':                          # the predicate, holding the lock
                    if pred > 0:
                        npred = pred - 1 if mode == 'count' else pred
                        out.append(mk(('unlock', None), 'predicate true', pred=npred))
                    else:
                        out.append(mk((order[0], None), 'predicate false'))
                elif pc == 'c1':
                    out.append(mk((after['c1'], x), 'count waiter', waiters=waiters + 1))
                elif pc == 'c2':
                    out.append(mk((after['c2'], seq), 'read seq'))
                elif pc == 'c3':
                    out.append(mk((after['c3'], x), 'unlock', lock=-1))
                elif pc == 'c4':                            # futex_wait(seq, s)
                    if seq != x:
                        out.append(mk(('c5', None), 'futex_wait: changed'))
                    else:
                        out.append(mk(('sleep', x), 'futex_wait: sleep'))
                elif pc == 'sleep':
                    if wk:
                        out.append(mk(('c5', None), 'slice'))
                elif pc == 'c5':
                    if free:
                        out.append(mk(('c6', None), 'relock', lock=i))
                elif pc == 'c6':
                    out.append(mk(('pred', None), 'uncount', waiters=waiters - 1))
                elif pc == 'unlock':
                    out.append(mk(('done', None), 'unlock', lock=-1))
            else:                                           # a notifier
                if pc == 'lock':
                    if free:
                        out.append(mk(('write', None), 'lock', lock=i))
                elif pc == 'write':
                    npred = pred + 1 if mode == 'count' else 1
                    out.append(mk(('n1', True), 'write, notify inside', pred=npred))
                    out.append(mk(('unlock', False), 'write, notify after', pred=npred))
                elif pc == 'unlock':
                    out.append(mk(('n1' if not x else 'done', x), 'unlock', lock=-1))
                elif pc == 'n1':
                    nxt = 'unlock' if x else 'done'
                    if waiters == 0:
                        out.append(mk((nxt, x), 'load waiters: 0'))
                    elif how == 'one' and 'notify_one_no_bump' in MUT:
                        out.append(mk(('n3', x), 'load waiters'))
                    else:
                        out.append(mk(('n2', x), 'load waiters'))
                elif pc == 'n2':
                    out.append(mk(('n3', x), 'bump seq', seq=seq + 1))
                elif pc == 'n3':
                    nxt = 'unlock' if x else 'done'
                    sleepers = [j for j in range(W) if alive[j] and locs[j][0] == 'sleep']
                    if how == 'all' or 'one_wakes_all' in OPT:
                        out.append(mk((nxt, x), 'wake_all', others={j: ('c5', None) for j in sleepers}))
                    elif sleepers:
                        for j in sleepers:
                            out.append(mk((nxt, x), f'wake_one ({j})', others={j: ('c5', None)}))
                    else:
                        out.append(mk((nxt, x), 'wake_one (none)'))
        return out

    def holds(i, pc, x):
        if i < W:
            return pc in ('pred', 'c6', 'unlock') or (pc in order and order.index(pc) <= order.index('c3'))
        return pc in ('write', 'unlock') or (pc in ('n1', 'n2', 'n3') and x)

    def check(st):
        (lock, seq, waiters, pred, alive, crashes, wk), locs = st
        for i in range(P):
            if alive[i] and holds(i, *locs[i]) and lock != i:
                return f'process {i} at {locs[i][0]} without the lock (lock {lock})'
        return None

    def finished(st, has_steps):
        (lock, seq, waiters, pred, alive, crashes, wk), locs = st
        if any(alive[i] and locs[i][0] != 'done' for i in range(W, P)):
            return False
        # a waiter whose predicate stays false may wait for ever
        return all(not alive[j] or locs[j][0] == 'done' for j in range(W)) or pred == 0

    def show(s):
        (lock, seq, waiters, pred, alive, crashes, wk), locs = s
        return f'lock={lock} seq={seq} waiters={waiters} pred={pred} alive={alive} locs={locs}'

    return explore_live((init, locs0), steps, check, finished, show)


def print_result(name, r, t):
    if isinstance(r, str):
        print(f'{name} ({time.time() - t:.1f} s):', r, flush=True)
        return False
    _, seen, good = r
    print(f'{name} ({time.time() - t:.1f} s): ok: {len(seen)} states, {len(good)} finished', flush=True)
    return True


if __name__ == '__main__':
    what = None
    for a in sys.argv[1:]:
        if a.startswith('crashes='):
            MAXCRASH = int(a.split('=')[1])
        elif a in ('event', 'condition'):
            what = a
        elif a in ('clear', 'strict', 'one_wakes_all'):
            OPT.add(a)
        else:
            MUT.add(a)
    if what is None:
        sys.exit(__doc__)
    tag = ' '.join(sorted(OPT | MUT))
    good = True
    if what == 'event':
        for W in (1, 2, 3):
            t = time.time()
            good = print_result(f'event {tag} waiters={W}', run_event(W), t)
            if not good:
                break
    else:
        cases = [(1, 1, 'flag', 'all'), (2, 1, 'flag', 'all'), (2, 2, 'flag', 'all'),
                 (1, 1, 'count', 'one'), (2, 1, 'count', 'one'), (2, 2, 'count', 'one'),
                 (2, 1, 'count', 'all'), (2, 2, 'count', 'all')]
        for W, Nn, mode, how in cases:
            t = time.time()
            good = print_result(f'condition {tag} waiters={W} notifiers={Nn} {mode} notify_{how}',
                          run_condition(W, Nn, mode, how), t)
            if not good:
                break
    sys.exit(0 if good else 1)
