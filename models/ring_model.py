#!/usr/bin/env python3
"""Exhaustive model check of the crash-tolerant MPMC ring protocol described in
../RELIABILITY.md ("A ring protocol with no unguarded window").

Explores every interleaving of the protocol's atomic steps for small queues, with processes
killed at any step (one kill by default, `crashes=2` for two). A standby consumer starts once
a consumer was killed. Checks in every state: no duplicate delivery, nothing delivered that was
not published, per-producer FIFO in claim order, an alive producer never loses its publish.
Checks at the end: at most one message lost per killed consumer, every message of a live
producer published. Progress: from every reachable state all live processes can still finish
(catches deadlock and livelock).

Modes: `close_anytime` (close races with puts: a put checks `closed` after its claim and, if
closed, retires the position and settles head), `join` (consumers call task_done; a joiner
waits for all work; checks that join never returns early and never waits for work that died).
At the end of every run: a closed, drained queue has len() == 0 (len settles head first).

Mode `retire_anytime`: a put's payload writer may unwind half-way through its copy (a
panicking `put_with` closure); the put retires its claim as a put that saw close does, while
the queue is open, and the producer goes on with its next message.

Mode `fast` (the Rust hot path since layout 3): publish and release are plain stores, guarded
by a load of the slot (the step asserts that the slot still holds this process's claim, which
exact liveness guarantees, so the store never overwrites a peer's word); a put/get moves
tail/head with "load; store t + 1 if it still reads t" (two steps, so a slow process can move
the index backwards), not a CAS; join and len scan from head to the first unclaimed position
(at most N) instead of trusting tail.

Usage: python3 ring_model.py [crashes=2] [close_anytime] [join] [retire_anytime] [fast] [MUTATION ...]
(a few minutes each). A mutation removes one rule, to show the check can fail:
repair_alive_writer, no_late_help, no_reader_repair + no_consumer_repair,
close_anytime + no_close_check, close_anytime + undo_as_empty, join + late_inhand,
fast + join + join_to_tail (join trusts the lagging tail).

Abstractions (what the Rust code must still get right, with loom): sequentially consistent
memory; waiting is "sleep until the watched word changes or the owner dies" (in code: a timed
futex wait that re-checks liveness); liveness is exact (participant record + OFD lock);
payload copies are atomic steps; close happens after producers finish.

Slot word = (phase, lap, owner); phases E empty, W writing, F full, R reading, S skip.
Position p lives in slot p % N with lap p // N."""
import sys
from collections import deque

MUT = set()
MAXCRASH = 1

def run(N, producers, consumers, crash=True, verbose=False):
    P = len(producers)
    C = consumers + 1          # the last consumer is a standby that starts once a consumer was killed
    nproc = P + C + 2          # + controller that closes, + joiner (JOIN only)
    CTL, JNR = P + C, P + C + 1
    # proc local: (pc, pos, seen, k)  k = index of next message for producers
    init_slots = tuple(('E', 0, -1) for _ in range(N))
    init_locals = tuple([('p0', 0, None, 0)] * P + [('c0', 0, None, 0)] * C + [('m0', 0, None, 0)]
                        + [('j0' if 'join' in MUT else 'done', 0, None, 0)])
    # shared: head, tail, slots, data, closed, alive, acked, delivered(tuple), claims(tuple of msg in claim order), losses
    init = (0, 0, init_slots, tuple([None] * N), False, tuple([True] * nproc), frozenset(), (), (), 0, 0,
            tuple([0] * C), frozenset())
    # last two: in_hand per consumer (items taken, task_done not yet called), done set
    # last two: crashes used, put-failures (repaired while alive)
    def lap(p): return p // N
    def past(p, sl):   # RawRing::past: first position that can be unconsumed when p's slot is at lap sl
        return p + max(0, sl - lap(p) - 1) * N + 1 if sl > lap(p) else p + 1
    def msg(pid, k): return (pid, k)

    def steps(st):
        head, tail, slots, data, closed, alive, acked, deliv, claims, crashes, pfail, inh, done = st[0]
        locs = st[1]
        out = []
        for i in range(nproc):
            if not alive[i]:
                continue
            pc, pos, seen, k = locs[i]
            if pc == 'done':
                continue
            consumer_died = any(not alive[j] for j in range(P, P + C))
            if crash and crashes < MAXCRASH and (i < P or (i < P + C - 1 and not consumer_died)):
                a = list(alive); a[i] = False
                out.append(((head, tail, slots, data, closed, tuple(a), acked, deliv, claims, crashes + 1, pfail, inh, done), locs, f'kill {i}'))
            def mk(nloc, head=head, tail=tail, slots=slots, data=data, closed=closed, acked=acked, deliv=deliv, claims=claims, pfail=pfail, inh=inh, done=done):
                l = list(locs); l[i] = nloc
                return ((head, tail, slots, data, closed, alive, acked, deliv, claims, crashes, pfail, inh, done), tuple(l))
            def bump(d):
                x = list(inh); x[i - P] += d; return tuple(x)
            def setslot(idx, val):
                s = list(slots); s[idx] = val; return tuple(s)
            def after_retire(k):   # a put that saw close stops; one whose writer unwound goes on
                return ('done', 0, None, producers[i]) if k >= 0 else ('p0', 0, None, -k)
            if i < P:                                   # ---- producer
                if k >= producers[i]:
                    out.append(mk(('done', 0, None, k)) + ('pdone',)); continue
                if pc == 'p0':
                    out.append(mk(('p1', tail, None, k)) + ('load tail',))
                elif pc == 'p1':
                    t = pos; s = slots[t % N]
                    out.append(mk(('p1d', t, s, k)) + ('load slot',))
                elif pc == 'p1d':
                    t = pos; ph, sl, ow = seen; L = lap(t)
                    if ph == 'E' and sl == L:
                        out.append(mk(('p2', t, seen, k)) + ('decide claim',))
                    elif (sl == L and ph in 'WFRS') or sl > L:
                        out.append(mk(('ph', t, seen, k)) + ('decide help tail',))
                    elif sl == L - 1 and ph in 'WFRS':
                        if ph == 'R' and not alive[ow] and 'no_reader_repair' not in MUT:
                            out.append(mk(('prR', t, seen, k)) + ('decide repair R',))
                        elif ph == 'W' and not alive[ow]:
                            out.append(mk(('prW', t, seen, k)) + ('decide repair W',))
                        elif ph == 'S':
                            out.append(mk(('prS', t, seen, k)) + ('decide repair S',))
                        else:   # full: block until the slot word or tail changes, or the owner dies
                            if slots[t % N] != seen or tail != t or (ow >= 0 and not alive[ow]):
                                out.append(mk(('p0', 0, None, k)) + ('wake full',))
                    else:
                        out.append(mk(('p0', 0, None, k)) + ('stale',))
                elif pc == 'p2':
                    t = pos; idx = t % N
                    if slots[idx] == seen:
                        nxt = 'pcc' if 'close_anytime' in MUT else 'p3'
                        out.append(mk((nxt, t, None, k), slots=setslot(idx, ('W', lap(t), i))) + ('claim ok',))
                    else:
                        out.append(mk(('p0', 0, None, k)) + ('claim fail',))
                elif pc == 'ph':
                    t = pos
                    out.append(mk(('p0', 0, None, k), tail=(t + 1 if tail == t else tail)) + ('help tail',))
                elif pc == 'prR':
                    t = pos; idx = t % N
                    ns = setslot(idx, ('E', lap(t), -1)) if slots[idx] == seen else slots
                    out.append(mk(('p0', 0, None, k), slots=ns) + ('repair R',))
                elif pc == 'prW':
                    t = pos; idx = t % N
                    ns = setslot(idx, ('S', seen[1], -1)) if slots[idx] == seen else slots
                    out.append(mk(('p0', 0, None, k), slots=ns) + ('repair W',))
                elif pc == 'prS':
                    t = pos; idx = t % N
                    ns = setslot(idx, ('E', lap(t), -1)) if slots[idx] == seen else slots
                    out.append(mk(('p0', 0, None, k), slots=ns) + ('repair S',))
                elif pc == 'pcc':     # closed? checked after the claim, so no put lands after close
                    t = pos
                    undo = closed and 'no_close_check' not in MUT
                    out.append(mk(('pundo' if undo else 'p3', t, None, k)) + ('load closed',))
                elif pc == 'pundo':   # retire the claimed position as already consumed; put fails Closed
                    t = pos; idx = t % N
                    back = ('E', lap(t), -1) if 'undo_as_empty' in MUT else ('E', lap(t) + 1, -1)
                    ns = setslot(idx, back) if slots[idx] == ('W', lap(t), i) else slots
                    out.append(mk(('pundo2', t, None, k), slots=ns) + ('retire claim',))
                elif pc == 'pundo2':  # move tail past it, as any helper would
                    t = pos
                    out.append(mk(('pundo3', t, None, k), tail=(t + 1 if tail == t else tail)) + ('help tail after retire',))
                elif pc == 'pundo3':  # and head over every retired or consumed position up to t,
                    t = pos           # in case no consumer is left to do it
                    h = head
                    if h > t:
                        out.append(mk(after_retire(k)) + ('head is past',))
                    else:
                        out.append(mk(('pundo4', t, h, k)) + ('load head',))
                elif pc == 'pundo4':  # settle head: step over what holds nothing deliverable
                    t = pos; h = seen; idx = h % N; ph, sl, ow = slots[idx]
                    if sl > lap(h):
                        out.append(mk(('pundo3', t, None, k), head=(h + 1 if head == h else head)) + ('help head after retire',))
                    elif ph == 'S' and sl == lap(h):
                        out.append(mk(('pundo4', t, h, k), slots=setslot(idx, ('E', lap(h) + 1, -1))) + ('skip at head',))
                    elif ph == 'W' and sl == lap(h) and not alive[ow]:
                        out.append(mk(('pundo4', t, h, k), slots=setslot(idx, ('S', lap(h), -1))) + ('repair W at head',))
                    else:
                        out.append(mk(after_retire(k)) + ('an item is at head',))
                elif pc == 'p3':
                    t = pos
                    if 'fast' in MUT:   # load tail; store t + 1 only if it still reads t
                        out.append(mk(('p3s' if tail == t else 'p4', t, None, k)) + ('reload tail',))
                    else:
                        out.append(mk(('p4', t, None, k), tail=(t + 1 if tail == t else tail)) + ('advance tail',))
                elif pc == 'p3s':
                    t = pos
                    out.append(mk(('p4', t, None, k), tail=t + 1) + ('store tail',))
                elif pc == 'p4':
                    t = pos; idx = t % N
                    d = list(data); d[idx] = msg(i, k)
                    out.append(mk(('p5', t, None, k), data=tuple(d)) + ('write',))
                    if 'retire_anytime' in MUT:   # the payload writer unwinds half-way: retire
                        d[idx] = ('torn', i, k)     # (k encoded negative: carry on with k + 1)
                        out.append(mk(('pundo', t, None, -(k + 1)), data=tuple(d)) + ('writer unwinds',))
                elif pc == 'p5':
                    t = pos; idx = t % N
                    if 'fast' in MUT:   # guarded store: the slot must still hold our claim
                        bad = 0 if slots[idx] == ('W', lap(t), i) else 1
                        out.append(mk(('p0', 0, None, k + 1), slots=setslot(idx, ('F', lap(t), -1)), acked=acked | {msg(i, k)}, pfail=pfail + bad) + ('publish (store)',))
                    elif slots[idx] == ('W', lap(t), i):
                        out.append(mk(('p0', 0, None, k + 1), slots=setslot(idx, ('F', lap(t), -1)), acked=acked | {msg(i, k)}) + ('publish',))
                    else:
                        out.append(mk(('p0', 0, None, k + 1), pfail=pfail + 1) + ('publish lost',))
            elif i < P + C:                             # ---- consumer
                if pc == 'c0':
                    standby = i == P + C - 1
                    if standby and all(alive[j] for j in range(P, P + C - 1)) and not (k or locs[i][1]):
                        continue   # the standby joins only after another consumer was killed
                    out.append(mk(('c1', head, None, k)) + ('load head',))
                elif pc == 'c1':
                    h = pos
                    out.append(mk(('c1d', h, (slots[h % N], False), k)) + ('load slot',))
                elif pc == 'cc':      # slot looked empty: load the closed flag (a separate word)
                    h = pos
                    out.append(mk(('cc2' if closed else 'cw', h, seen, k)) + ('load closed',))
                elif pc == 'cc2':     # closed: reload the slot; empty now means empty for good
                    h = pos; s = slots[h % N]
                    if s == seen and head == h:
                        out.append(mk(('done', 0, None, k)) + ('closed+empty',))
                    else:
                        out.append(mk(('c0', 0, None, k)) + ('closed but not empty',))
                elif pc == 'cw':      # sleep until the slot word, head or closed changes
                    h = pos
                    if slots[h % N] != seen or head != h or closed:
                        out.append(mk(('c0', 0, None, k)) + ('wake empty',))
                elif pc == 'c1d':
                    h = pos; (ph, sl, ow), was_closed = seen; L = lap(h)
                    s = (ph, sl, ow)
                    if ph == 'F' and sl == L:
                        out.append(mk(('c2i' if 'join' in MUT else 'c2', h, s, k)) + ('decide claim',))
                    elif (ph == 'R' and sl == L) or (sl > L and 'no_late_help' not in MUT):
                        # position h is taken or already consumed (a later lap may even be in
                        # flight when the consumer that took h died before advancing head)
                        out.append(mk(('ch', h, None, k)) + ('decide help head',))
                    elif ph == 'S' and sl == L:
                        out.append(mk(('cs', h, s, k)) + ('decide skip',))
                    elif ph == 'W' and sl == L:
                        if not alive[ow] or 'repair_alive_writer' in MUT:
                            out.append(mk(('crW', h, s, k)) + ('decide repair W',))
                        elif slots[h % N] != s or head != h or not alive[ow]:
                            out.append(mk(('c0', 0, None, k)) + ('wake writing',))
                    elif ph == 'R' and sl == L - 1 and not alive[ow] and 'no_consumer_repair' not in MUT:
                        # the consumer of position h - N died before releasing it: repair, retry
                        out.append(mk(('crR', h, s, k)) + ('decide repair R',))
                    elif (ph == 'E' and sl == L) or (ph == 'R' and sl == L - 1):
                        # nothing produced at h yet (a live reader may still hold h - N)
                        out.append(mk(('cc', h, s, k)) + ('decide empty',))
                    else:
                        out.append(mk(('c0', 0, None, k)) + ('stale',))
                elif pc == 'c2i':
                    out.append(mk(('c2', pos, seen, k), inh=bump(0 if 'late_inhand' in MUT else 1)) + ('in_hand += 1',))
                elif pc == 'c2':
                    h = pos; idx = h % N
                    if slots[idx] == seen:
                        out.append(mk(('c3', h, None, k), slots=setslot(idx, ('R', lap(h), i)), claims=claims + ((data[idx], i),)) + ('claim ok',))
                    else:
                        out.append(mk(('c2u' if 'join' in MUT else 'c0', 0, None, k)) + ('claim fail',))
                elif pc == 'c2u':
                    out.append(mk(('c0', 0, None, k), inh=bump(0 if 'late_inhand' in MUT else -1)) + ('in_hand -= 1 (undo)',))
                elif pc == 'ctd':     # task_done
                    out.append(mk(('c0', 0, None, k), inh=bump(-1), done=done | {seen}) + ('task_done',))
                elif pc == 'ch':
                    h = pos
                    out.append(mk(('c0', 0, None, k), head=(h + 1 if head == h else head)) + ('help head',))
                elif pc == 'cs':
                    h = pos; idx = h % N
                    ns = setslot(idx, ('E', lap(h) + 1, -1)) if slots[idx] == seen else slots
                    out.append(mk(('ch', h, None, k), slots=ns) + ('skip',))
                elif pc == 'crR':
                    h = pos; idx = h % N
                    ns = setslot(idx, ('E', lap(h), -1)) if slots[idx] == seen else slots
                    out.append(mk(('c0', 0, None, k), slots=ns) + ('repair R',))
                elif pc == 'crW':
                    h = pos; idx = h % N
                    ns = setslot(idx, ('S', lap(h), -1)) if slots[idx] == seen else slots
                    out.append(mk(('c0', 0, None, k), slots=ns) + ('repair W',))
                elif pc == 'c3':
                    h = pos
                    if 'fast' in MUT:
                        out.append(mk(('c3s' if head == h else 'c4', h, None, k)) + ('reload head',))
                    else:
                        out.append(mk(('c4', h, None, k), head=(h + 1 if head == h else head)) + ('advance head',))
                elif pc == 'c3s':
                    h = pos
                    out.append(mk(('c4', h, None, k), head=h + 1) + ('store head',))
                elif pc == 'c4':
                    h = pos; idx = h % N
                    out.append(mk(('c5', h, data[idx], k)) + ('copy out',))
                elif pc == 'c5':
                    h = pos; idx = h % N
                    if 'fast' in MUT:   # guarded store: the slot must still hold our claim
                        bad = 0 if slots[idx] == ('R', lap(h), i) else 1
                        nxt = ('ctd', 0, seen, k + 1) if 'join' in MUT else ('c0', 0, None, k + 1)
                        out.append(mk(nxt, slots=setslot(idx, ('E', lap(h) + 1, -1)), deliv=deliv + (seen,), pfail=pfail + bad) + ('release (store)',))
                    elif slots[idx] == ('R', lap(h), i):
                        nxt = ('ctd', 0, seen, k + 1) if 'join' in MUT else ('c0', 0, None, k + 1)
                        late = 1 if 'late_inhand' in MUT else 0
                        out.append(mk(nxt, slots=setslot(idx, ('E', lap(h) + 1, -1)), deliv=deliv + (seen,), inh=bump(late)) + ('release',))
                    else:
                        out.append(mk(('c0', 0, None, k)) + ('release lost',))
            elif i == CTL:                              # ---- controller: close
                if pc == 'm0':
                    if 'close_anytime' in MUT or all((not alive[j]) or locs[j][0] == 'done' for j in range(P)):
                        out.append(mk(('done', 0, None, 0), closed=True) + ('close',))
            else:                                       # ---- joiner: q.join() after producers end
                def live(ph, sl, ow, p):
                    return sl == lap(p) and (ph == 'F' or (ph in 'WR' and alive[ow]))
                if pc == 'j0':
                    if all((not alive[j]) or locs[j][0] == 'done' for j in range(P)):
                        out.append(mk(('j1', 0, None, 0)) + ('join starts',))
                elif pc == 'j1':
                    out.append(mk(('j2', head, head, 0)) + ('join: load head',))   # seen = head
                elif pc == 'j2':   # k = tail seen (fast: visits so far)
                    out.append(mk(('js', pos, seen, 0 if 'fast' in MUT and 'join_to_tail' not in MUT else tail)) + ('join: load tail',))
                elif pc == 'js':      # scan the ring from pos to the tail seen
                    if 'fast' in MUT and 'join_to_tail' not in MUT:
                        # to the first position not claimed at its lap (claims form a prefix),
                        # jumping over later laps as RawRing::past does; k counts visits
                        ph, sl, ow = slots[pos % N]
                        unclaimed = sl < lap(pos) or (sl == lap(pos) and ph == 'E')
                        if unclaimed or k >= 3 * N:
                            out.append(mk(('jc', 0, seen, 0)) + ('join: ring clear',))
                        elif live(ph, sl, ow, pos):
                            out.append(mk(('jw', 0, seen, 0)) + ('join: live item',))
                        else:
                            out.append(mk(('js', past(pos, sl), seen, k + 1)) + ('join: slot clear',))
                    elif pos >= k:
                        out.append(mk(('jc', 0, seen, 0)) + ('join: ring clear',))
                    else:
                        ph, sl, ow = slots[pos % N]
                        if live(ph, sl, ow, pos):
                            out.append(mk(('jw', 0, seen, 0)) + ('join: live item',))
                        else:
                            out.append(mk(('js', pos + 1, seen, k)) + ('join: slot clear',))
                elif pc == 'jc':      # then every live consumer's in_hand
                    c = pos
                    if c >= C:
                        held = {m for (m, who) in claims if not alive[who]}
                        missing = {m for m in acked if m not in done and m not in held}
                        nd = frozenset(done | {('JOINED', tuple(sorted(missing)))})
                        out.append(mk(('done', 0, None, 0), done=nd) + ('join returns',))
                    elif alive[P + c] and inh[c] != 0:
                        out.append(mk(('jw', 0, seen, 0)) + ('join: work in hand',))
                    else:
                        out.append(mk(('jc', c + 1, seen, 0)) + ('join: consumer clear',))
                elif pc == 'jw':      # timed sleep: rescan after a wake-up or the slice timeout
                    out.append(mk(('j1', 0, None, 0)) + ('join: rescan',))
        return out

    def check(st):
        head, tail, slots, data, closed, alive, acked, deliv, claims, crashes, pfail, inh, done = st[0]
        for d in done:
            if isinstance(d, tuple) and d and d[0] == 'JOINED' and d[1]:
                return f'join returned while {list(d[1])} were neither done nor held by a dead consumer'
        if len(set(deliv)) != len(deliv): return 'duplicate delivery'
        for m in deliv:
            if m not in acked: return f'delivered unpublished {m}'
        if pfail: return 'an alive producer lost its publish' if 'fast' not in MUT else 'a publish/release store hit a slot it no longer held'
        for pid in range(P):
            seq = [m[1] for (m, _) in claims if m is not None and m[0] == pid]
            if seq != sorted(seq): return f'FIFO broken for producer {pid}: {seq}'
        if any(m is None for (m, _) in claims): return 'claimed a slot with no data'
        return None

    start = (init, init_locals)
    seen = {start: None}
    preds = {}                 # state -> states that step into it, for the progress check
    good = []                  # terminal states where every live process finished
    q = deque([start])
    terminal = 0
    while q:
        st = q.popleft()
        err = check(st)
        if err: return report(seen, st, err, verbose)
        nxt = steps(st)
        alive = st[0][5]
        if not nxt:
            locs = st[1]
            idle_standby = lambda j: j == P + C - 1 and locs[j] == ('c0', 0, None, 0)
            if not all((not alive[j]) or locs[j][0] == 'done' or idle_standby(j) for j in range(nproc)):
                return report(seen, st, 'deadlock', verbose)
            terminal += 1
            acked, deliv, crashes = st[0][6], st[0][7], st[0][9]
            missing = acked - set(deliv)
            dead_cons = sum(1 for j in range(P, P + C) if not alive[j])
            if len(missing) > dead_cons: return report(seen, st, f'lost {missing}', verbose)
            alive_prod_msgs = {msg(j, k) for j in range(P) if alive[j] for k in range(producers[j])}
            if not MUT & {'close_anytime', 'retire_anytime'} and not alive_prod_msgs <= acked:
                return report(seen, st, 'alive producer message not acked', verbose)
            # closed and drained: len() must say 0. len() settles first, as get does: it steps head
            # over consumed positions (later lap), SKIP, and WRITING by a dead owner; then counts.
            if st[0][4]:
                h, t_, sl_ = st[0][0], st[0][1], st[0][2]
                while h < t_:
                    ph, sl, ow = sl_[h % N]
                    if sl > lap(h) or (sl == lap(h) and (ph == 'S' or (ph == 'W' and not alive[ow]))):
                        h += 1
                    else:
                        break
                if max(0, t_ - h) != 0 and 'fast' not in MUT:
                    return report(seen, st, f'closed and drained but len() = {t_ - h} (head {st[0][0]}, tail {t_})', verbose)
                if 'fast' in MUT:   # len counts deliverable items from head to the first unclaimed
                    p, n = st[0][0], 0
                    for _ in range(3 * N):
                        ph, sl, ow = sl_[p % N]
                        if sl < lap(p) or (sl == lap(p) and ph == 'E'):
                            break
                        if sl == lap(p) and (ph == 'F' or (ph == 'W' and alive[ow])):
                            n += 1
                        p = past(p, sl)
                    if n != 0:
                        return report(seen, st, f'closed and drained but len() = {n}', verbose)
            good.append(st)
            continue
        for n in nxt:
            key = (n[0], n[1])
            preds.setdefault(key, []).append(st)
            if key not in seen:
                seen[key] = (st, n[2])
                q.append(key)
    # Progress: from every reachable state some good terminal state must stay reachable
    # (catches livelock: processes spinning forever without finishing).
    ok = set(good)
    stack = list(good)
    while stack:
        s = stack.pop()
        for p in preds.get(s, ()):
            if p not in ok:
                ok.add(p); stack.append(p)
    stuck = [s for s in seen if s not in ok]
    if stuck:
        return report(seen, min(stuck, key=lambda s: len(str(s))), f'livelock: {len(stuck)} states cannot finish', verbose)
    return f'ok: {len(seen)} states, {terminal} terminal'

def report(seen, st, err, verbose):
    path = []
    cur = st
    while seen[cur] is not None:
        prev, label = seen[cur]
        path.append((label, cur))
        cur = prev
    path.reverse()
    lines = [f'VIOLATION: {err}']
    for label, s in path[-40:]:
        lines.append(f'  {label:24} head={s[0][0]} tail={s[0][1]} slots={s[0][2]} alive={s[0][5]} locs={s[1]}')
    return '\n'.join(lines)

if __name__ == '__main__':
    for a in sys.argv[1:]:
        if a.startswith('crashes='): MAXCRASH = int(a.split('=')[1])
        else: MUT.add(a)
    small = [(1, [2], 1), (2, [2], 1), (1, [1, 1], 1), (2, [2, 1], 1), (1, [2], 2), (2, [1, 1], 2)]
    cases = [(1, [1, 1], 1), (2, [2, 1], 1), (2, [1, 1], 2)] if MAXCRASH > 1 else small if MUT & {'join', 'close_anytime', 'retire_anytime', 'fast'} else [
        (1, [2], 1), (2, [2], 1), (1, [1, 1], 1), (2, [2, 1], 1), (1, [2], 2), (2, [2], 2),
        (1, [1, 1], 2), (2, [3], 1), (2, [1, 1], 2),
    ]
    for N, prods, cons in cases:
        print(f'{" ".join(sorted(MUT))} N={N} producers={prods} consumers={cons}:', run(N, prods, cons), flush=True)
