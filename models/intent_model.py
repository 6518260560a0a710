#!/usr/bin/env python3
"""Exhaustive model check of a crash-tolerant MPMC ring whose claims are CASes on `tail` and
`head` (as in crossbeam's ArrayQueue), not on the slot words: the candidate for layout
version 4 of `src/raw/ring/` (see models/README.md, "The intent protocol").

Why: a claim that is a CAS on the slot word (layout 3, ring_model.py) is a locked instruction
on the cache line the other side just wrote, so every put and every get stalls for a line
transfer and an upgrade, and slots cannot share a line. With the claims on `head`/`tail` the
slot words are only loaded and stored, four 16-byte slots fit in a line, and a 1P1C `u64`
stream costs what crossbeam's algorithm costs (benches/README.md, the bare-ring rows).

What replaces the owner in the slot word: each participant has a record whose `claim` word
says which position it is claiming, ('P', t) or ('G', h). It is stored *before* the CAS on the
index and cleared *after* the publish or release store. So a position below `tail` whose slot
is still free was claimed by a producer that either still shows ('P', t) in its record (alive:
wait for it) or is dead (nobody alive shows it: step over the position). The same holds for a
position below `head` whose slot was not released yet, with ('G', h).

Explores every interleaving of the protocol's atomic steps for small queues, with processes
killed at any step (one kill; `crashes=2` for two). A standby consumer starts once a consumer
was killed. A scan of the records is one step per record (not atomic). Checks in every state:
no duplicate delivery, nothing delivered that was not published, per-producer FIFO in claim
order, no publish, release or repair store ever meets a word other than the one it expects
(a guarded store). Checks at the end: at most one message lost per killed consumer, every
message of a live producer published. Progress: from every reachable state all live processes
can still finish (catches deadlock and livelock).

Mode `close_anytime`: close races with puts. A put looks at `closed` before it starts (and a
put waiting for room is woken by close), as the Rust code does. It loads `closed` after its claim and, if
closed, stores SKIP(lap t) in its slot (the put fails Closed); a get at that position steps over
it as over a dead writer's (claim, release FREE of the next lap). At the end of every run no
position in [head, tail) is FULL. Mutation `close_anytime no_close_check`: the put does not look.

Mode `join`: consumers count `in_hand` (+1 before the claim, undone if it fails) and call
task_done after each item; a joiner (after the producers end) scans [head, tail) for a FULL
slot or a claimed one whose writer is alive, then every live consumer's `in_hand`, and returns
when all are clear. Checks that join never returns while an item published by a live producer
is neither done nor held by a dead consumer. Mutation `join late_inhand`: `in_hand` counted at
the release instead of before the claim.

Mode `put_steps_over` (the Rust code): a put that finds the ring full because the head
position holds nothing (retired: SKIP; or claimed by a writer that no live record shows:
EMPTY after the scan and reload) steps over it as a get would, its own record showing
('G', h); scans for a live ('G', h) then look at every process's record.

Mode `taken_mark` (the Rust code since session 7): right after its claim CAS a get stores
TAKEN(lap h) over the FULL word (so that it owns the slot line while it copies); its release
then expects TAKEN. Producers treat any word of the previous lap alike, so their rules are
unchanged; the checks assert that the mark and the release never meet another word.

Mode `retire_anytime`: a put's payload writer may unwind half-way through its copy (a panicking
`put_with` closure); the put stores SKIP(lap t) as a put that saw close does, clears its record
and the producer goes on with its next message. The torn item must never be delivered (the
"delivered unpublished" check).

Not modelled yet: `len` beyond the end check above. Same abstractions as ring_model.py: sequentially consistent memory, exact liveness,
waiting as "sleep until a watched word changes or the watched owner dies", atomic copies.

Usage: python3 intent_model.py [crashes=2] [MUTATION ...]. Mutations (each must fail):
  intent_after_claim  the producer records its claim after the tail CAS
  no_reload           a consumer repairs without re-reading the slot after its scan
  no_scan             a consumer steps over a claimed, unpublished position without the scan
  no_reader_repair    producers never free a slot whose reader died
  release_keeps_claim a consumer clears its record before its release store
  pso_no_scan         (with put_steps_over) a put steps over an unpublished head without
                      looking for its writer

Slot word = (phase, lap): E free for position lap*N + index, F full with that position's item,
S skipped (a put that saw close retired the position).
Position p lives in slot p % N with lap p // N."""
import sys
from collections import deque

MUT = set()
MAXCRASH = 1


def run(N, producers, consumers, crash=True):
    P = len(producers)
    C = consumers + 1          # the last consumer is a standby that starts once one was killed
    nproc = P + C + 2          # + controller that closes, + joiner (mode join)
    CTL, JNR = P + C, P + C + 1
    init_slots = tuple(('E', 0) for _ in range(N))
    init_locals = tuple([('p0', 0, None, 0)] * P + [('c0', 0, None, 0)] * C + [('m0', 0, None, 0)]
                        + [('j0' if 'join' in MUT else 'done', 0, None, 0)])
    # shared: head, tail, slots, data, closed, alive, acked, delivered, claims (item, consumer)
    # in consumer-claim order, crashes, bad (guarded stores that met another word), records
    init = (0, 0, init_slots, tuple([None] * N), False, tuple([True] * nproc), frozenset(), (), (),
            0, 0, tuple([None] * nproc), tuple([0] * C), frozenset())

    def lap(p): return p // N
    def msg(pid, k): return (pid, k)

    def steps(st):
        head, tail, slots, data, closed, alive, acked, deliv, claims, crashes, bad, recs, inh, done = st[0]
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
                out.append(((head, tail, slots, data, closed, tuple(a), acked, deliv, claims,
                             crashes + 1, bad, recs, inh, done), locs, f'kill {i}'))

            def mk(nloc, label, head=head, tail=tail, slots=slots, data=data, closed=closed,
                   acked=acked, deliv=deliv, claims=claims, bad=bad, rec=False, inh=inh, done=done):
                l = list(locs); l[i] = nloc
                r = recs
                if rec is not False:
                    r = list(recs); r[i] = rec; r = tuple(r)
                return ((head, tail, slots, data, closed, alive, acked, deliv, claims, crashes,
                         bad, r, inh, done), tuple(l), label)

            def bump(d):
                x = list(inh); x[i - P] += d; return tuple(x)

            def setslot(idx, val):
                s = list(slots); s[idx] = val; return tuple(s)

            def guarded(idx, expect, val):
                # a plain store that the protocol says can only meet `expect`
                return setslot(idx, val), bad + (0 if slots[idx] == expect else 1)

            if i < P:                                   # ---- producer
                if k >= producers[i]:
                    out.append(mk(('done', 0, None, k), 'pdone')); continue
                if pc == 'p0':
                    if 'close_anytime' in MUT and closed:
                        # the early look (Rust: `put_attempt`): a put after close fails Closed
                        out.append(mk(('done', 0, None, producers[i]), 'closed before the claim'))
                    else:
                        out.append(mk(('p1', tail, None, k), 'load tail'))
                elif pc == 'p1':
                    out.append(mk(('p1d', pos, slots[pos % N], k), 'load slot'))
                elif pc == 'p1d':
                    t = pos; ph, sl = seen; L = lap(t)
                    if (ph, sl) == ('E', L):
                        nxt = 'p3' if 'intent_after_claim' in MUT else 'p2'
                        out.append(mk((nxt, t, None, k), 'decide claim'))
                    elif sl == L - 1:
                        # position t - N is not released yet: full, or its reader died
                        out.append(mk(('pf', t, seen, k), 'decide previous lap'))
                    else:
                        out.append(mk(('p0', 0, None, k), 'stale'))
                elif pc == 'p2':
                    out.append(mk(('p3', pos, None, k), 'record claim', rec=('P', pos)))
                elif pc == 'p3':
                    t = pos
                    if tail == t:
                        nxt = 'p2x' if 'intent_after_claim' in MUT else 'pcc' if 'close_anytime' in MUT else 'p4'
                        out.append(mk((nxt, t, None, k), 'claim ok (CAS tail)', tail=t + 1))
                    else:
                        out.append(mk(('p3f', t, None, k), 'claim fail'))
                elif pc == 'p2x':
                    out.append(mk(('p4', pos, None, k), 'record claim (late)', rec=('P', pos)))
                elif pc == 'pcc':     # closed? checked after the claim, so no put lands after close
                    undo = closed and 'no_close_check' not in MUT
                    out.append(mk(('pret' if undo else 'p4', pos, None, k), 'load closed'))
                elif pc == 'pret':    # retire: mark the position skipped; the put fails Closed
                    t = pos; L = lap(t)
                    s_, b = guarded(t % N, ('E', L), ('S', L))
                    out.append(mk(('pret2', t, None, k), 'retire (store SKIP)', slots=s_, bad=b))
                elif pc == 'pret2':
                    out.append(mk(('done', 0, None, producers[i]), 'clear record; put fails Closed', rec=None))
                elif pc == 'p3f':
                    out.append(mk(('p0', 0, None, k), 'clear record', rec=None))
                elif pc == 'p4':
                    t = pos; d = list(data); d[t % N] = msg(i, k)
                    out.append(mk(('p5', t, None, k), 'write', data=tuple(d)))
                    if 'retire_anytime' in MUT:   # the payload writer unwinds half-way: retire
                        d[t % N] = ('torn', i, k)
                        out.append(mk(('puw', t, None, k), 'writer unwinds', data=tuple(d)))
                elif pc == 'puw':     # retire as a put that saw close does (RetireOnUnwind)
                    t = pos; L = lap(t)
                    s_, b = guarded(t % N, ('E', L), ('S', L))
                    out.append(mk(('puw2', t, None, k), 'retire (store SKIP)', slots=s_, bad=b))
                elif pc == 'puw2':    # the put panics out; the producer goes on with its next one
                    out.append(mk(('p0', 0, None, k + 1), 'clear record; next message', rec=None))
                elif pc == 'p5':
                    t = pos; L = lap(t)
                    s, b = guarded(t % N, ('E', L), ('F', L))
                    out.append(mk(('p6', t, None, k), 'publish (store)', slots=s, bad=b,
                                  acked=acked | {msg(i, k)}))
                elif pc == 'p6':
                    out.append(mk(('p0', 0, None, k + 1), 'clear record', rec=None))
                elif pc == 'pf':      # load head: was position t - N claimed by a consumer?
                    t = pos
                    if head > t - N and 'no_reader_repair' not in MUT:
                        # put_steps_over: a producer's record may show Get too, so scan all
                        first = 0 if 'put_steps_over' in MUT else P
                        out.append(mk(('ps', t, (seen, first), k), 'load head: claimed'))
                    elif 'put_steps_over' in MUT and head == t - N and seen[0] == 'S':
                        out.append(mk(('pso2', t, seen, k), 'load head: retired head, step over'))
                    elif 'put_steps_over' in MUT and head == t - N and seen[0] == 'E':
                        nxt = ('pso2', t, seen, k) if 'pso_no_scan' in MUT else ('psw', t, (seen, 0), k)
                        out.append(mk(nxt, 'load head: unpublished head'))
                    else:
                        out.append(mk(('pw', t, (seen, head), k), 'load head: full'))
                elif pc == 'psw':     # put_steps_over: scan the producers' records for a live Put(t - N)
                    t = pos; s0, j = seen
                    if j == P:
                        out.append(mk(('psr', t, s0, k), 'scan: no live writer of the head'))
                    elif alive[j] and recs[j] == ('P', t - N):
                        out.append(mk(('pw', t, (s0, head), k), f'scan: head writer {j} is live (full)'))
                    else:
                        out.append(mk(('psw', t, (s0, j + 1), k), f'scan: not {j}'))
                elif pc == 'psr':     # reload: still free means the head's writer died
                    t = pos
                    if slots[t % N] == seen:
                        out.append(mk(('pso2', t, seen, k), 'reload: head writer died'))
                    else:
                        out.append(mk(('p0', 0, None, k), 'reload: changed'))
                elif pc == 'pso2':    # step over t - N as a get does, with our record showing Get
                    out.append(mk(('pso3', pos, seen, k), 'record Get (put steps over)', rec=('G', pos - N)))
                elif pc == 'pso3':
                    h = pos - N
                    if head == h:
                        out.append(mk(('pso4', pos, seen, k), 'CAS head (put steps over)', head=h + 1))
                    else:
                        out.append(mk(('p3f', pos, None, k), 'CAS head fails (put steps over)'))
                elif pc == 'pso4':
                    h = pos - N
                    s_, b = guarded(h % N, seen, ('E', lap(h) + 1))
                    out.append(mk(('p3f', pos, None, k), 'store free (put steps over)', slots=s_, bad=b))
                elif pc == 'pw':      # full: sleep until the slot or head changes
                    t = pos; s0, h0 = seen
                    if slots[t % N] != s0 or head != h0 or ('close_anytime' in MUT and closed):
                        out.append(mk(('p0', 0, None, k), 'wake full'))
                elif pc == 'ps':      # scan the consumers' records for a live ('G', t - N)
                    t = pos; s0, j = seen
                    if j == P + C:
                        out.append(mk(('pr', t, s0, k), 'scan: no live reader'))
                    elif alive[j] and recs[j] == ('G', t - N):
                        out.append(mk(('pwr', t, (s0, j), k), f'scan: reader {j} is live'))
                    else:
                        out.append(mk(('ps', t, (s0, j + 1), k), f'scan: not {j}'))
                elif pc == 'pwr':     # a live reader holds t - N: wait for its release (or death)
                    t = pos; s0, j = seen
                    if slots[t % N] != s0 or recs[j] != ('G', t - N) or not alive[j]:
                        out.append(mk(('p0', 0, None, k), 'wake reader'))
                elif pc == 'pr':      # repair: CAS the unreleased word to free for lap(t)
                    t = pos
                    if slots[t % N] == seen:
                        out.append(mk(('p0', 0, None, k), 'repair reader (CAS)',
                                      slots=setslot(t % N, ('E', lap(t)))))
                    else:
                        out.append(mk(('p0', 0, None, k), 'repair reader: CAS fails'))
            elif i < P + C:                             # ---- consumer
                standby = i == P + C - 1
                if pc == 'c0':
                    if standby and all(alive[j] for j in range(P, P + C - 1)) and not k:
                        continue      # the standby joins only after another consumer was killed
                    out.append(mk(('c1', head, None, k), 'load head'))
                elif pc == 'c1':
                    out.append(mk(('c1d', pos, slots[pos % N], k), 'load slot'))
                elif pc == 'c1d':
                    h = pos; ph, sl = seen; L = lap(h)
                    if (ph, sl) == ('F', L):
                        out.append(mk(('c2', h, None, k), 'decide claim'))
                    elif (ph, sl) == ('E', L):
                        out.append(mk(('ct', h, seen, k), 'decide: free, look at tail'))
                    elif (ph, sl) == ('S', L):
                        out.append(mk(('cr2', h, seen, k), 'decide: skip a retired position'))
                    elif sl == L - 1:
                        # position h - N not released yet: nothing can be produced at h
                        out.append(mk(('cc', h, (seen, tail), k), 'decide empty'))
                    else:
                        out.append(mk(('c0', 0, None, k), 'stale'))
                elif pc == 'c2':
                    nxt = 'c2i' if 'join' in MUT else 'c3'
                    out.append(mk((nxt, pos, None, k), 'record claim', rec=('G', pos)))
                elif pc == 'c2i':     # before the claim: a joiner that sees h claimed sees this
                    out.append(mk(('c3', pos, None, k), 'in_hand += 1',
                                  inh=bump(0 if 'late_inhand' in MUT else 1)))
                elif pc == 'c3':
                    h = pos
                    if head == h:
                        nxt = 'c3m' if 'taken_mark' in MUT else 'c4'
                        out.append(mk((nxt, h, None, k), 'claim ok (CAS head)', head=h + 1,
                                      claims=claims + ((data[h % N], i),)))
                    else:
                        nxt = 'c3u' if 'join' in MUT else 'c3f'
                        out.append(mk((nxt, h, None, k), 'claim fail'))
                elif pc == 'c3m':     # taken_mark: store TAKEN(lap h) over our FULL word
                    h = pos; L = lap(h)
                    s_, b = guarded(h % N, ('F', L), ('T', L))
                    out.append(mk(('c4', h, None, k), 'mark taken (store)', slots=s_, bad=b))
                elif pc == 'c3u':
                    out.append(mk(('c3f', pos, None, k), 'in_hand -= 1 (undo)',
                                  inh=bump(0 if 'late_inhand' in MUT else -1)))
                elif pc == 'c3f':
                    out.append(mk(('c0', 0, None, k), 'clear record', rec=None))
                elif pc == 'c4':
                    if 'release_keeps_claim' in MUT:
                        out.append(mk(('c4x', pos, data[pos % N], k), 'copy out; clear record early',
                                      rec=None))
                    else:
                        out.append(mk(('c5', pos, data[pos % N], k), 'copy out'))
                elif pc == 'c4x':
                    out.append(mk(('c5', pos, seen, k), 'pause'))
                elif pc == 'c5':
                    h = pos; L = lap(h)
                    mine = ('T', L) if 'taken_mark' in MUT else ('F', L)
                    s, b = guarded(h % N, mine, ('E', L + 1))
                    late = 1 if 'late_inhand' in MUT else 0
                    out.append(mk(('c6', h, seen if 'join' in MUT else None, k + 1), 'release (store)',
                                  slots=s, bad=b, deliv=deliv + (seen,), inh=bump(late)))
                elif pc == 'c6':
                    nxt = ('ctd', 0, seen, k) if 'join' in MUT and seen is not None else ('c0', 0, None, k)
                    out.append(mk(nxt, 'clear record', rec=None))
                elif pc == 'ctd':     # task_done
                    out.append(mk(('c0', 0, None, k), 'task_done', inh=bump(-1), done=done | {seen}))
                elif pc == 'ct':      # slot free for h: empty, or claimed and not yet published
                    h = pos
                    if tail > h:
                        nxt = ('cr', h, seen, k) if 'no_scan' in MUT else ('cs', h, (seen, 0), k)
                        out.append(mk(nxt, 'load tail: claimed'))
                    else:
                        out.append(mk(('cc', h, (seen, tail), k), 'load tail: empty'))
                elif pc == 'cs':      # scan the producers' records for a live ('P', h)
                    h = pos; s0, j = seen
                    if j == P:
                        nxt = ('cr2', h, s0, k) if 'no_reload' in MUT else ('cr', h, s0, k)
                        out.append(mk(nxt, 'scan: no live writer'))
                    elif alive[j] and recs[j] == ('P', h):
                        out.append(mk(('cwp', h, (s0, j), k), f'scan: writer {j} is live'))
                    else:
                        out.append(mk(('cs', h, (s0, j + 1), k), f'scan: not {j}'))
                elif pc == 'cwp':     # a live writer holds h: wait for its publish (or death)
                    h = pos; s0, j = seen
                    if slots[h % N] != s0 or recs[j] != ('P', h) or not alive[j]:
                        out.append(mk(('c0', 0, None, k), 'wake writer'))
                elif pc == 'cr':      # reload: still free means its writer died before publishing
                    h = pos
                    if slots[h % N] == seen:
                        out.append(mk(('cr2', h, seen, k), 'reload: writer died'))
                    else:
                        out.append(mk(('c0', 0, None, k), 'reload: changed'))
                elif pc == 'cr2':     # step over it: claim h as a get does, release it empty
                    out.append(mk(('cr3', pos, seen, k), 'record claim (skip)', rec=('G', pos)))
                elif pc == 'cr3':
                    h = pos
                    if head == h:
                        out.append(mk(('cr4', h, seen, k), 'claim ok (CAS head, skip)', head=h + 1))
                    else:
                        out.append(mk(('c3f', h, None, k), 'claim fail (skip)'))
                elif pc == 'cr4':
                    h = pos; L = lap(h)
                    s, b = guarded(h % N, seen, ('E', L + 1))
                    out.append(mk(('c6', h, None, k), 'skip (store)', slots=s, bad=b))
                elif pc == 'cc':      # nothing at h: load the closed flag
                    out.append(mk(('cc2' if closed else 'cw', pos, seen, k), 'load closed'))
                elif pc == 'cc2':     # closed: reload; unchanged means empty for good
                    h = pos; s0, t0 = seen
                    if slots[h % N] == s0 and head == h and tail == t0:
                        out.append(mk(('done', 0, None, k), 'closed+empty'))
                    else:
                        out.append(mk(('c0', 0, None, k), 'closed but not empty'))
                elif pc == 'cw':      # sleep until the slot, head, tail or closed changes
                    h = pos; s0, t0 = seen
                    if slots[h % N] != s0 or head != h or tail != t0 or closed:
                        out.append(mk(('c0', 0, None, k), 'wake empty'))
            elif i == CTL:                              # ---- controller: close
                if pc == 'm0' and ('close_anytime' in MUT or all((not alive[j]) or locs[j][0] == 'done' for j in range(P))):
                    out.append(mk(('done', 0, None, 0), 'close', closed=True))
            else:                                       # ---- joiner: q.join() after producers end
                if pc == 'j0':
                    if all((not alive[j]) or locs[j][0] == 'done' for j in range(P)):
                        out.append(mk(('j1', 0, None, 0), 'join starts'))
                elif pc == 'j1':
                    out.append(mk(('j2', head, None, 0), 'join: load head'))
                elif pc == 'j2':      # k = the tail seen
                    out.append(mk(('js', pos, None, tail), 'join: load tail'))
                elif pc == 'js':      # scan [head, tail): a FULL slot, or a claimed one whose
                    p = pos           # writer is alive, is work not done
                    if p >= k:
                        out.append(mk(('jc', 0, None, 0), 'join: ring clear'))
                    else:
                        ph, sl = slots[p % N]
                        if (ph, sl) == ('F', lap(p)):
                            out.append(mk(('jw', 0, None, 0), 'join: live item'))
                        elif (ph, sl) == ('E', lap(p)):
                            out.append(mk(('jp', p, P - 1, k), 'join: claimed, look for its writer'))
                        else:
                            out.append(mk(('js', p + 1, None, k), 'join: slot clear'))
                elif pc == 'jp':      # scan the producers' records for a live Put(p)
                    p, j = pos, seen
                    if j < 0:
                        out.append(mk(('js', p + 1, None, k), 'join: writer dead'))
                    elif alive[j] and recs[j] == ('P', p):
                        out.append(mk(('jw', 0, None, 0), 'join: writer live'))
                    else:
                        out.append(mk(('jp', p, j - 1, k), f'join: not {j}'))
                elif pc == 'jc':      # then every live consumer's in_hand
                    c = pos
                    if c >= C:
                        held = {m for (m, who) in claims if not alive[who]}
                        missing = {m for m in acked if m not in done and m not in held}
                        nd = frozenset(done | {('JOINED', tuple(sorted(missing)))})
                        out.append(mk(('done', 0, None, 0), 'join returns', done=nd))
                    elif alive[P + c] and inh[c] != 0:
                        out.append(mk(('jw', 0, None, 0), 'join: work in hand'))
                    else:
                        out.append(mk(('jc', c + 1, None, 0), 'join: consumer clear'))
                elif pc == 'jw':      # timed sleep: rescan after a wake-up or the slice timeout
                    out.append(mk(('j1', 0, None, 0), 'join: rescan'))
        return out

    def check(st):
        head, tail, slots, data, closed, alive, acked, deliv, claims, crashes, bad, recs, inh, done = st[0]
        for d in done:
            if isinstance(d, tuple) and d and d[0] == 'JOINED' and d[1]:
                return f'join returned while {list(d[1])} were neither done nor held by a dead consumer'
        if len(set(deliv)) != len(deliv): return 'duplicate delivery'
        for m in deliv:
            if m not in acked: return f'delivered unpublished {m}'
        if bad: return 'a guarded store met a word other than the one it expected'
        for pid in range(P):
            seq = [m[1] for (m, _) in claims if m is not None and m[0] == pid]
            if seq != sorted(seq): return f'FIFO broken for producer {pid}: {seq}'
        return None

    start = (init, init_locals)
    seen = {start: None}
    preds = {}
    good = []
    q = deque([start])
    terminal = 0
    while q:
        st = q.popleft()
        err = check(st)
        if err: return report(seen, st, err)
        nxt = steps(st)
        alive = st[0][5]
        if not nxt:
            locs = st[1]
            idle_standby = lambda j: j == P + C - 1 and locs[j] == ('c0', 0, None, 0)
            if not all((not alive[j]) or locs[j][0] == 'done' or idle_standby(j) for j in range(nproc)):
                return report(seen, st, 'deadlock')
            terminal += 1
            acked, deliv = st[0][6], st[0][7]
            missing = acked - set(deliv)
            dead_cons = sum(1 for j in range(P, P + C) if not alive[j])
            if len(missing) > dead_cons: return report(seen, st, f'lost {missing}')
            alive_prod_msgs = {msg(j, k) for j in range(P) if alive[j] for k in range(producers[j])}
            if not MUT & {'close_anytime', 'retire_anytime'} and not alive_prod_msgs <= acked:
                return report(seen, st, 'alive producer message not published')
            # closed and drained (every live consumer saw Closed): no FULL slot in [head, tail)
            h, t_, sl_ = st[0][0], st[0][1], st[0][2]
            left = [p for p in range(h, t_) if sl_[p % N] == ('F', lap(p))]
            if left:
                return report(seen, st, f'closed and drained but positions {left} are FULL')
            good.append(st)
            continue
        for n in nxt:
            key = (n[0], n[1])
            preds.setdefault(key, []).append(st)
            if key not in seen:
                seen[key] = (st, n[2])
                q.append(key)
    ok = set(good)
    stack = list(good)
    while stack:
        s = stack.pop()
        for p in preds.get(s, ()):
            if p not in ok:
                ok.add(p); stack.append(p)
    stuck = [s for s in seen if s not in ok]
    if stuck:
        return report(seen, min(stuck, key=lambda s: len(str(s))), f'livelock: {len(stuck)} states cannot finish')
    return f'ok: {len(seen)} states, {terminal} terminal'


def report(seen, st, err):
    path = []
    cur = st
    while seen[cur] is not None:
        prev, label = seen[cur]
        path.append((label, cur))
        cur = prev
    path.reverse()
    lines = [f'VIOLATION: {err}']
    for label, s in path[-40:]:
        lines.append(f'  {label:28} head={s[0][0]} tail={s[0][1]} slots={s[0][2]} alive={s[0][5]} '
                     f'recs={s[0][11]} locs={s[1]}')
    return '\n'.join(lines)


if __name__ == '__main__':
    for a in sys.argv[1:]:
        if a.startswith('crashes='): MAXCRASH = int(a.split('=')[1])
        else: MUT.add(a)
    cases = [(1, [1, 1], 1), (2, [2, 1], 1), (2, [1, 1], 2)] if MAXCRASH > 1 else [
        (1, [2], 1), (2, [2], 1), (1, [1, 1], 1), (2, [2, 1], 1), (1, [2], 2), (2, [1, 1], 2),
    ] if MUT & {'close_anytime', 'join', 'retire_anytime'} else [
        (1, [2], 1), (2, [2], 1), (1, [1, 1], 1), (2, [2, 1], 1), (1, [2], 2), (2, [2], 2),
        (1, [1, 1], 2), (2, [3], 1), (2, [1, 1], 2),
    ]
    failed = False
    for N, prods, cons in cases:
        r = run(N, prods, cons)
        failed |= not r.startswith('ok')
        print(f'{" ".join(sorted(MUT)) or "intent"} N={N} producers={prods} consumers={cons}:', r, flush=True)
    sys.exit(1 if failed else 0)
