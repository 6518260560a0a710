#!/usr/bin/env python3
"""Exhaustive model check of the async wake-up ("doorbell") handshake: a waker
(`Segment::ring_doorbells`) reaching async waiters (`Segment::wait_async`, src/segment/doorbell.rs) of other processes through
their participant record's word `doorbell` (the model's `armed`) and a datagram socket per
process, on top of the ring's eventcount (`raw::ring::eventcount`), with futexes modelled
exactly and processes killed at any step.

Shared state:
  items       the condition: number of available items (a queue, in effect)
  seq         the eventcount word (bit 0 = armed; a plain integer here, it stays small)
  sleepers    the eventcount's count of announced sleepers
  armed[p]    async process p's record word `doorbell`: async waits armed in p
  sock[p]     p's doorbell socket: 0 or 1 datagram (capacity 1: a send to a full socket, or to
              a dead process's, is dropped; a send never blocks)
  epoch[p]    (process-local, not shared memory) the drain epoch of p, see `await` below;
              kept as a per-task flag `woken`: "p's epoch moved since my snapshot"

Steps (each line one atomic step):
  Waker (one producer P, puts 1 to 3 items):
    p1 `publish`       items += 1 (SeqCst)
    p2 `load sleepers` 0 -> this item is done
    p3 `disarm seq`    seq odd -> CAS odd -> even; lost or even -> this item is done. (Rust
                       loads then CASes: with one waker nothing else can change an odd seq in
                       between, so one step here.)
    p4 `futex wake`    wake_all on seq: every sync sleeper returns
    p5 `scan`          `ring_doorbells`, one step per record: armed[p] > 0 -> `send` one
                       datagram to p (dropped if full or p dead), else `skip`
    The waker has no blocking step: every one of its steps is enabled whenever it is its turn
    (`steps` asserts it), so a waker never blocks (check 3).
  Async waiter task (`Segment::wait_async`; the tasks of one process share its record and its socket):
    t1 `try`            items > 0 -> take one (CAS/decrement, one step) -> done
    t2 `arm`            armed[p] += 1 (SeqCst), and the task snapshots p's drain epoch
    t3a `announce`      sleepers += 1   } eventcount.rs `announce`: fetch_add, then the arming
    t3b `arm seq`       seq |= 1        } CAS loop (one step: it only ends with seq odd)
    t4 `recheck`        items > 0 -> take one, then `depart` (sleepers -= 1), `disarm`
                        (armed[p] -= 1), done
    t5 `await`          until p's socket holds a datagram -> `drain` it (all of it) and bump
                        p's epoch; or p's epoch moved since the task's snapshot (another task
                        of p drained) -> `woken`; or a timed `slice`, enabled only once some
                        process was killed (slices exist to survive the dead: without kills no
                        wake-up may depend on them, so liveness means "no lost wake-up")
    t6 `depart`         sleepers -= 1
    t7 `disarm`         armed[p] -= 1, back to t1
  Option `cancel`: a task may be dropped at any step before it holds an item (a take is one
  step and a taken item is the task's result, so nothing holds an item without being done;
  Rust can drop a future only between polls, at t5, so this is more than needed). Its Drop
  undoes what it did: `drop: depart` if it had announced, `drop: disarm` if it had armed.
  Option `sync`: one sync (blocking) consumer S, eventcount.rs `block_on` exactly: `try`,
  `announce`, `arm seq` (s = the odd seq), `recheck` (take -> `depart`, done), `futex_wait`(seq,
  s) (seq != s -> return; else sleep until p4's wake_all or, after a kill, a slice), `depart`,
  back to `try`.
  Kills: any unfinished process at any step (a process's tasks die with it); its record's
  armed count and its sleepers stay for ever (wakers keep sending to its dead socket:
  dropped). One kill, two with `crashes=2`.

The in-process release rule (found by this model, see "Finding"): a drain releases every
task of the process that took its epoch snapshot (at t2, before it arms seq) and has not left
t5 since: the drainer bumps a process-local epoch (in Rust: an atomic counter plus a broadcast
such as `tokio::sync::Notify::notify_waiters`, the task's `Notified` enabled at the snapshot),
and a task at t5 returns when the socket is readable (it drains) or the epoch moved. The
snapshot is modelled as part of `arm`; taking it anywhere earlier in the round only adds
spurious returns.

Finding: the rule first proposed, "a datagram's arrival releases every task of the process
that is in t5 at that moment" (`wake_at_arrival`), loses a wake-up with 2 tasks X, Y of one
process, 2 items: X waits in t5; item 1 is published; Y arms, announces, arms seq (already
odd); P disarms seq and sends D to the process (only X is in t5, Y has not rechecked yet);
X drains D, takes item 1; Y rechecks (nothing) and waits in t5; item 2: seq is even, so P
neither wakes nor scans, and Y waits for ever with an item there. The datagram was the one
wake-up for both tasks, since both had armed seq before P's CAS. The release must reach every
task that armed seq before the CAS whose datagram is drained: counting a task from its await
(`snapshot_at_await`) or from just after its `arm seq` (`snapshot_after_arm_seq`) also loses
it. With the drain rule, the capacity-1 socket is enough: a datagram dropped on a full socket
is covered by the drain of the one that fills it, which comes later.

Checks:
  1 items     no item taken twice or lost: items >= 0 and items + items taken (by tasks or
              S, live or killed after the take) == items published
  2 liveness  (`explore_live`, kills and cancels not counted as progress) from every state
              every live consumer can finish (done or dropped) unless no item is left and the
              waker is finished or dead: no lost wake-up
  3 waker     never blocks (by construction, asserted in `steps`)
  4 leaks     with no kill, once everybody is finished: sleepers == 0 and every armed == 0
Cases (A, B tasks; S; items = consumers): (1,0) (2,0) (1,1) (2,1); with `sync` a sync consumer
is added to each case but the last (items 2, 3, 3).

Usage: python3 doorbell_model.py [crashes=2] [sync] [cancel] [MUTATION ...]
Mutations that must be caught:
  arm_after_announce  t2 after t3: the waker may scan before the record shows armed, its CAS
                      having disarmed seq (lost wake-up)
  no_recheck          no t4: an item published between t1 and t3 is missed (lost wake-up)
  drain_per_task      a drain releases only the task that drains, the other task of the same
                      process stays in t5 (lost wake-up with 2 tasks)
  wake_at_arrival     the rule first proposed: only the tasks in t5 when a datagram arrives are
                      released (lost wake-up with 2 tasks; see "Finding")
  snapshot_at_await   the epoch snapshot taken after the recheck, when the await starts, as a
                      plain `readable().await` after the recheck would (lost wake-up, 2 tasks)
  snapshot_after_arm_seq  the snapshot taken after `arm seq`, before the recheck (lost
                      wake-up, 2 tasks: P's CAS, send and another task's drain in between)
  cancel_keeps_arm    (with `cancel`) a dropped task does not depart/disarm: not a lost
                      wake-up (a leaked count only makes wakers disarm and send in vain), so
                      liveness holds; caught only by check 4 (a leak)
  cancel_loses_item   (with `cancel`) a task dropped after its recheck took an item (t4, before
                      depart) returns without the item: caught by check 1
"""
import sys
import time

from explore import explore, explore_live, report

MUT = set()
OPT = set()
MAXCRASH = 1


def run(tasks_per_proc, sync):
    """tasks_per_proc: tasks of each async process (A, then B if > 1 entry); sync: with S."""
    NA = len(tasks_per_proc)
    owner = [p for p, n in enumerate(tasks_per_proc) for _ in range(n)]   # task -> async process
    T = len(owner)
    NITEMS = T + (1 if sync else 0)
    # processes for kills: 'P', async processes 0..NA-1, 'S'
    # task order of steps after t1
    if 'arm_after_announce' in MUT:
        order = ['t3a', 't3b', 't2']
    else:
        order = ['t2', 't3a', 't3b']
    order += ['t5'] if 'no_recheck' in MUT else ['t4', 't5']
    snap = 't2'                                              # the step that takes the snapshot
    if 'snapshot_at_await' in MUT:
        order.insert(order.index('t5'), 'snap')
        snap = 'snap'
    elif 'snapshot_after_arm_seq' in MUT:
        order.insert(order.index('t3b') + 1, 'snap')
        snap = 'snap'
    after = dict(zip(order, order[1:]))
    if 'wake_at_arrival' in MUT:
        window = {'t5'}                                      # tasks a release can reach
    else:
        window = set(order[order.index(snap) + 1:])
    before_take = {'t1', 't2', 't3a', 't3b', 't4', 't5', 't6', 't7', 'snap'}

    # state: (items, published, seq, sleepers, armed, sock, alive, crashes, lost, ploc, tasks, sloc)
    #   alive: (P, async 0.., S); ploc: (pc, left, k); task: (pc, ann, arm, woken, took);
    #   sloc: (pc, s, took) or None
    alive0 = tuple([True] * (1 + NA + (1 if sync else 0)))
    start = (0, 0, 0, 0, tuple([0] * NA), tuple([0] * NA), alive0, 0, 0, ('p1', NITEMS, 0),
             tuple([('t1', False, False, False, False)] * T), ('s1', None, False) if sync else None)
    SI = 1 + NA                                              # S's index in alive
    IDX = {k: i for i, k in enumerate(('items', 'pub', 'seq', 'slp', 'armed', 'sock', 'alive',
                                       'crashes', 'lost', 'ploc', 'tasks', 'sloc'))}

    def tfin(t):
        return t[0] in ('done', 'cancelled')

    def steps(st):
        items, pub, seq, slp, armed, sock, alive, crashes, lost, ploc, tasks, sloc = st
        out = []
        anykill = crashes > 0

        def mk(label, **kw):
            l = list(st)
            for k, v in kw.items():
                l[IDX[k]] = v
            return (tuple(l), label)

        def setv(tup, i, v):
            l = list(tup); l[i] = v
            return tuple(l)

        # kills
        if crashes < MAXCRASH:
            if alive[0] and ploc[0] != 'done':
                out.append(mk('kill P', alive=setv(alive, 0, False), crashes=crashes + 1))
            for p in range(NA):
                if alive[1 + p] and any(not tfin(tasks[j]) for j in range(T) if owner[j] == p):
                    out.append(mk(f'kill {"AB"[p]}', alive=setv(alive, 1 + p, False), crashes=crashes + 1))
            if sync and alive[SI] and sloc[0] != 'done':
                out.append(mk('kill S', alive=setv(alive, SI, False), crashes=crashes + 1))

        # the waker
        if alive[0] and ploc[0] != 'done':
            pc, left, k = ploc
            nxt_item = ('p1', left, 0) if left > 0 else ('done', 0, 0)
            n0 = len(out)
            if pc == 'p1':
                out.append(mk('P publish', items=items + 1, pub=pub + 1, ploc=('p2', left - 1, 0)))
            elif pc == 'p2':
                if slp == 0:
                    out.append(mk('P load sleepers: 0', ploc=nxt_item))
                else:
                    out.append(mk('P load sleepers', ploc=('p3', left, 0)))
            elif pc == 'p3':
                if seq & 1:
                    out.append(mk('P disarm seq', seq=seq + 1, ploc=('p4', left, 0)))
                else:
                    out.append(mk('P disarm seq: not armed', ploc=nxt_item))
            elif pc == 'p4':
                ns = sloc
                if sync and alive[SI] and sloc[0] == 'sleep':
                    ns = ('s6', sloc[1], sloc[2])
                out.append(mk('P futex wake', sloc=ns, ploc=('p5', left, 0)))
            elif pc == 'p5':
                np = ('p5', left, k + 1) if k + 1 < NA else nxt_item
                if armed[k] == 0:
                    out.append(mk(f'P scan {"AB"[k]}: skip', ploc=np))
                elif not alive[1 + k] or sock[k] == 1:
                    out.append(mk(f'P scan {"AB"[k]}: send, dropped', ploc=np))
                else:
                    nt = tasks
                    if 'wake_at_arrival' in MUT:
                        nt = tuple((t[0], t[1], t[2], True, t[4]) if owner[j] == k and t[0] in window
                                   else t for j, t in enumerate(tasks))
                    out.append(mk(f'P scan {"AB"[k]}: send', sock=setv(sock, k, 1), tasks=nt, ploc=np))
            assert len(out) == n0 + 1, 'the waker must always have exactly one step'

        # async tasks
        for j in range(T):
            p = owner[j]
            pc, ann, arm, woken, took = tasks[j]
            if not alive[1 + p] or tfin(tasks[j]):
                continue
            name = f'{"AB"[p]}{j if p == 0 else 0}'

            def tk(label, nloc, **kw):
                return mk(f'{name} {label}', tasks=setv(kw.pop('tasks', tasks), j, nloc), **kw)

            if 'cancel' in OPT and (pc in before_take or ('cancel_loses_item' in MUT and pc in ('r6', 'r7'))):
                nlost = lost + (1 if took else 0)
                if 'cancel_keeps_arm' in MUT:
                    nxt = 'cancelled'
                else:
                    nxt = 'x6' if ann else 'x7' if arm else 'cancelled'
                out.append(mk(f'cancel {name}', tasks=setv(tasks, j, (nxt, ann, arm, False, False)), lost=nlost))
            if pc == 't1':
                if items > 0:
                    out.append(tk('try: take', ('done', False, False, False, True), items=items - 1))
                else:
                    out.append(tk('try: none', (order[0], ann, arm, False, False)))
            elif pc == 't2':
                out.append(tk('arm', (after['t2'], ann, True, False, False), armed=setv(armed, p, armed[p] + 1)))
            elif pc == 't3a':
                out.append(tk('announce', (after['t3a'], True, arm, woken, False), slp=slp + 1))
            elif pc == 't3b':
                out.append(tk('arm seq', (after['t3b'], ann, arm, woken, False), seq=seq | 1))
            elif pc == 't4':
                if items > 0:
                    out.append(tk('recheck: take', ('r6', ann, arm, False, True), items=items - 1))
                else:
                    out.append(tk('recheck: none', (after['t4'], ann, arm, woken, False)))
            elif pc == 'snap':
                out.append(tk('snapshot epoch', (after['snap'], ann, arm, False, False)))
            elif pc == 't5':
                if sock[p]:
                    nt = tasks
                    if 'wake_at_arrival' not in MUT and 'drain_per_task' not in MUT:
                        nt = tuple((t[0], t[1], t[2], True, t[4]) if owner[i] == p and t[0] in window
                                   else t for i, t in enumerate(tasks))
                    out.append(tk('drain', ('t6', ann, arm, False, False), sock=setv(sock, p, 0), tasks=nt))
                elif woken:
                    out.append(tk('await: woken', ('t6', ann, arm, False, False)))
                elif anykill:
                    out.append(tk('slice', ('t6', ann, arm, False, False)))
            elif pc == 't6':
                out.append(tk('depart', ('t7', False, arm, False, False), slp=slp - 1))
            elif pc == 't7':
                out.append(tk('disarm', ('t1', False, False, False, False), armed=setv(armed, p, armed[p] - 1)))
            elif pc == 'r6':
                out.append(tk('depart', ('r7', False, arm, False, True), slp=slp - 1))
            elif pc == 'r7':
                out.append(tk('disarm', ('done', False, False, False, True), armed=setv(armed, p, armed[p] - 1)))
            elif pc == 'x6':
                out.append(tk('drop: depart', ('x7' if arm else 'cancelled', False, arm, False, False), slp=slp - 1))
            elif pc == 'x7':
                out.append(tk('drop: disarm', ('cancelled', False, False, False, False), armed=setv(armed, p, armed[p] - 1)))

        # the sync consumer (eventcount.rs block_on)
        if sync and alive[SI] and sloc[0] != 'done':
            pc, s, took = sloc
            if pc == 's1':
                if items > 0:
                    out.append(mk('S try: take', items=items - 1, sloc=('done', None, True)))
                else:
                    out.append(mk('S try: none', sloc=('s2', None, False)))
            elif pc == 's2':
                out.append(mk('S announce', slp=slp + 1, sloc=('s3', None, False)))
            elif pc == 's3':
                out.append(mk('S arm seq', seq=seq | 1, sloc=('s4', seq | 1, False)))
            elif pc == 's4':
                if items > 0:
                    out.append(mk('S recheck: take', items=items - 1, sloc=('s7', None, True)))
                else:
                    out.append(mk('S recheck: none', sloc=('s5', s, False)))
            elif pc == 's5':
                if seq != s:
                    out.append(mk('S futex_wait: changed', sloc=('s6', None, False)))
                else:
                    out.append(mk('S futex_wait: sleep', sloc=('sleep', s, False)))
            elif pc == 'sleep':
                if anykill:
                    out.append(mk('S slice', sloc=('s6', None, False)))
            elif pc == 's6':
                out.append(mk('S depart', slp=slp - 1, sloc=('s1', None, False)))
            elif pc == 's7':
                out.append(mk('S depart', slp=slp - 1, sloc=('done', None, True)))
        return out

    def taken(st):
        return sum(1 for t in st[10] if t[4]) + (1 if st[11] is not None and st[11][2] else 0)

    def all_done(st):
        items, pub, seq, slp, armed, sock, alive, crashes, lost, ploc, tasks, sloc = st
        return (ploc[0] == 'done' and all(tfin(t) for t in tasks)
                and (sloc is None or sloc[0] == 'done'))

    def check(st):
        items, pub, seq, slp, armed, sock, alive, crashes, lost, ploc, tasks, sloc = st
        if items < 0:
            return f'items = {items}: an item taken twice'
        if lost:
            return f'{lost} item(s) taken and lost by a live task (published {pub}, left {items}, taken {taken(st)})'
        if items + taken(st) != pub:
            return f'published {pub} != left {items} + taken {taken(st)}'
        if crashes == 0 and all_done(st) and (slp != 0 or any(armed)):
            return f'leak: everybody finished, no kill, but sleepers = {slp}, armed = {armed}'
        return None

    def finished(st, has_steps):
        items, pub, seq, slp, armed, sock, alive, crashes, lost, ploc, tasks, sloc = st
        if alive[0] and ploc[0] != 'done':
            return False
        if items == 0:
            return True                                      # nothing left to take
        if any(alive[1 + owner[j]] and not tfin(tasks[j]) for j in range(T)):
            return False
        return not (sync and alive[SI] and sloc[0] != 'done')

    def show(st):
        items, pub, seq, slp, armed, sock, alive, crashes, lost, ploc, tasks, sloc = st
        ts = ' '.join(f'{"AB"[owner[j]]}{j if owner[j] == 0 else 0}:{t[0]}{"*" if t[3] else ""}'
                      for j, t in enumerate(tasks))
        dead = ''.join(n for n, a in zip(['P'] + list('AB'[:NA]) + (['S'] if sync else []), alive) if not a)
        return (f'items={items} seq={seq} sleepers={slp} armed={armed} sock={sock} P:{ploc[0]} {ts}'
                + (f' S:{sloc[0]}' if sync else '') + (f' dead={dead}' if dead else ''))

    return explore_live(start, steps, check, finished, show)


def print_result(name, r, t):
    if isinstance(r, str):
        print(f'{name} ({time.time() - t:.1f} s):', r, flush=True)
        return False
    _, seen, good = r
    print(f'{name} ({time.time() - t:.1f} s): ok: {len(seen)} states, {len(good)} finished', flush=True)
    return True


if __name__ == '__main__':
    KNOWN_OPT = ('sync', 'cancel')
    KNOWN_MUT = ('arm_after_announce', 'no_recheck', 'drain_per_task', 'wake_at_arrival',
                 'snapshot_at_await', 'snapshot_after_arm_seq', 'cancel_keeps_arm',
                 'cancel_loses_item')
    for a in sys.argv[1:]:
        if a.startswith('crashes='):
            MAXCRASH = int(a.split('=')[1])
        elif a in KNOWN_OPT:
            OPT.add(a)
        elif a in KNOWN_MUT:
            MUT.add(a)
        else:
            sys.exit(__doc__)
    tag = ' '.join(sorted(OPT | MUT) + ([f'crashes={MAXCRASH}'] if MAXCRASH != 1 else []))
    if 'sync' in OPT:
        cases = [((1,), True), ((2,), True), ((1, 1), True)]
    else:
        cases = [((1,), False), ((2,), False), ((1, 1), False), ((2, 1), False)]
    good = True
    for tp, sync in cases:
        t = time.time()
        name = f'doorbell {tag} A={tp[0]} B={tp[1] if len(tp) > 1 else 0}{" S" if sync else ""}'
        good = print_result(name, run(tp, sync), t)
        if not good:
            break
    sys.exit(0 if good else 1)
