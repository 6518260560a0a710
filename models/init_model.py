#!/usr/bin/env python3
"""Exhaustive model check of how a segment comes into being: `Segment::open_or_create` in
src/segment/open.rs (with `create`, `init_new`, `open_inner` and `remove_if_abandoned`), for
processes that race on one name while any of them may be killed at any step.

Every process runs `open_or_create` once. Its steps, named as in the Rust code:

  create        shm_open(O_CREAT|O_EXCL): a new object under the name, or AlreadyExists
  init_new      beacon_try_lock(INIT_BEACON) (held: somebody took us for dead, start over),
                then name_inode: the name must still refer to our object (else start over),
                reserve (the size), write_and_publish (init_state = READY), then
  finish        register a participant (its beacon), and only then
  create        beacon_unlock(INIT_BEACON)
  open_inner    shm_open: NotFound starts over; wait for the size, then for READY
                (ABANDONED starts over); either wait may time out (the init timeout can be
                tiny, so a live creator can be timed out: time is a free choice here), which
                goes to remove_if_abandoned
  remove_if_abandoned
                beacon_try_lock(INIT_BEACON), held while deciding (busy: CreatorAtWork);
                beacon_range_is_held over the participant beacons: held means the object was
                published, so re-read init_state: READY is Published (open it again), any
                other word is LiveParticipants (a peer rewrote it: Corrupted); then fstat:
                no header yet means removable, else CAS init_state EMPTY -> ABANDONED (one
                winner); the winner runs unlink_if_same (the name must still refer to the
                object, then shm_unlink); closing the descriptor drops the beacon.

Each start-over costs one unit of a budget (the `give_up` deadline); an empty budget ends the
call with InitTimeout. A killed process drops every beacon it held (the kernel drops OFD locks
with the last descriptor); its objects and the name stay.

Checks:
  split name    every live process whose call succeeded holds the object the name refers to
                (nothing removes or replaces a published object that a live process holds)
  publish       the creator's READY store meets EMPTY (never an object marked ABANDONED)
  corrupted     the call fails with Corrupted only after a hostile write (mode `hostile`)
  progress      from every reachable state all live processes can finish

Usage: python3 init_model.py [crashes=2] [hostile] [MUTATION ...]. `hostile` adds a peer that,
once every call has returned, rewrites the init_state word of the named object to EMPTY, after
which one more process calls open_or_create; the split check then covers the processes that
held the object when the peer wrote (a forged word on an object that no live process holds
gets it removed and created afresh: the documented outcome; and a peer that races with a call
can as well unlink the name itself). Mutations that must be caught:
  test_beacon          remove_if_abandoned tests the init beacon (lock, unlock) and then
                       decides without holding it
  no_inode_check       init_new does not re-check the name after taking the beacon
  no_participant_check remove_if_abandoned ignores the participant beacons
  live_is_corrupt      live participants always mean Corrupted (no re-read of init_state)
"""
import sys

from explore import explore

MUT = set()
MAXCRASH = 1
HOSTILE = False

EMPTY, READY, ABANDONED = 'EMPTY', 'READY', 'ABANDONED'


def run(P, budget):
    # object: (sized, state, init_beacon holder or -1, participants)
    # shared: (name (object index or -1), objects, alive, crashes, hostile_done)
    # local: (pc, fd (object index or -1), budget left, outcome)
    init = (-1, (), tuple([True] * P), 0, False)  # hostile: False, or who held it then
    init_locals = tuple([('create', -1, budget, None)] * P)
    if HOSTILE:
        # the last process starts once the peer has written: a newcomer after a stray write
        init_locals = init_locals[:-1] + (('late', -1, budget, None),)

    def steps(st):
        (name, objs, alive, crashes, hostile), locs = st
        out = []
        settled = all(not alive[j] or locs[j][0] in ('done', 'late') for j in range(P))
        if HOSTILE and hostile is False and settled and name != -1 and objs[name][1] != EMPTY:
            o = list(objs)
            s, _, b, ps = o[name]
            o[name] = (s, EMPTY, b, ps)
            # the processes that hold the object already: the split check keeps them
            held = tuple(j for j in range(P) if alive[j] and isinstance(locs[j][3], tuple) and locs[j][0] == 'done')
            late = tuple(('create',) + l[1:] if l[0] == 'late' else l for l in locs)
            out.append(((name, tuple(o), alive, crashes, held), late, 'peer writes EMPTY'))
        for i in range(P):
            if not alive[i]:
                continue
            pc, fd, left, res = locs[i]
            if pc in ('done', 'late'):
                continue
            if crashes < MAXCRASH:
                a = list(alive)
                a[i] = False
                o = [(s, w, -1 if b == i else b, tuple(p for p in ps if p != i)) for (s, w, b, ps) in objs]
                out.append(((name, tuple(o), tuple(a), crashes + 1, hostile), locs, f'kill {i}'))

            def mk(pc2, fd2=fd, left2=left, res2=res, name2=name, objs2=objs, label=''):
                loc = list(locs)
                loc[i] = (pc2, fd2, left2, res2)
                return ((name2, objs2, alive, crashes, hostile), tuple(loc), f'{i}: {label}')

            def setobj(k, **kw):
                o = list(objs)
                s, w, b, ps = o[k]
                o[k] = (kw.get('sized', s), kw.get('state', w), kw.get('beacon', b), kw.get('parts', ps))
                return tuple(o)

            def again(label, objs2=objs, name2=name):
                # start over (sleep 1 ms); the budget is the give_up deadline
                if left <= 1:
                    return mk('done', -1, 0, 'InitTimeout', name2=name2, objs2=objs2, label=label + ', give up')
                return mk('create', -1, left - 1, None, name2=name2, objs2=objs2, label=label + ', start over')

            if pc == 'create':                         # shm_open(O_CREAT|O_EXCL)
                if name == -1:
                    k = len(objs)
                    out.append(mk('init_lock', k, name2=k, objs2=objs + ((False, EMPTY, -1, ()),), label='create'))
                else:
                    out.append(mk('open', -1, label='AlreadyExists'))
            elif pc == 'init_lock':                    # init_new: beacon_try_lock(INIT_BEACON)
                if objs[fd][2] == -1:
                    nxt = 'reserve' if 'no_inode_check' in MUT else 'init_inode'
                    out.append(mk(nxt, objs2=setobj(fd, beacon=i), label='init beacon taken'))
                else:
                    out.append(again('init beacon busy'))
            elif pc == 'init_inode':                   # init_new: name_inode(os_name) == inode
                if name == fd:
                    out.append(mk('reserve', label='name is ours'))
                else:
                    out.append(again('name lost', objs2=setobj(fd, beacon=-1)))
            elif pc == 'reserve':                      # fallocate: the size
                out.append(mk('publish', objs2=setobj(fd, sized=True), label='reserve'))
            elif pc == 'publish':                      # write_and_publish: store READY
                if objs[fd][1] != EMPTY:
                    out.append(mk('BAD publish over ' + objs[fd][1], label='publish'))
                else:
                    out.append(mk('register', objs2=setobj(fd, state=READY), label='publish'))
            elif pc == 'register':                     # finish: participants::register
                o = setobj(fd, parts=tuple(sorted(objs[fd][3] + (i,))))
                out.append(mk('unlock', objs2=o, label='register'))
            elif pc == 'unlock':                       # create: beacon_unlock(INIT_BEACON)
                out.append(mk('done', res2=('created', fd), objs2=setobj(fd, beacon=-1), label='init beacon dropped'))
            elif pc == 'open':                         # open_inner: shm_open
                if name == -1:
                    out.append(again('NotFound'))
                else:
                    out.append(mk('wait_size', name, label='shm_open'))
            elif pc == 'wait_size':                    # open_inner: wait for the size
                if objs[fd][0]:
                    out.append(mk('wait_ready', label='sized'))
                out.append(mk('remove_lock', label='InitTimeout (size)'))
            elif pc == 'wait_ready':                   # open_inner: wait for READY
                w = objs[fd][1]
                if w == READY:
                    out.append(mk('open_register', label='READY'))
                elif w == ABANDONED:
                    out.append(again('Abandoned'))
                out.append(mk('remove_lock', label='InitTimeout (state)'))
            elif pc == 'open_register':                # finish: participants::register
                o = setobj(fd, parts=tuple(sorted(objs[fd][3] + (i,))))
                out.append(mk('done', res2=('opened', fd), objs2=o, label='register'))
            elif pc == 'remove_lock':                  # remove_if_abandoned: beacon_try_lock
                if objs[fd][2] != -1:
                    out.append(again('CreatorAtWork'))
                elif 'test_beacon' in MUT:
                    out.append(mk('remove_parts', label='init beacon free (tested)'))
                else:
                    out.append(mk('remove_parts', objs2=setobj(fd, beacon=i), label='init beacon taken'))
            elif pc == 'remove_parts':                 # beacon_range_is_held(participants)
                if objs[fd][3] and 'no_participant_check' not in MUT:
                    nxt = 'corrupted' if 'live_is_corrupt' in MUT else 'remove_published'
                    out.append(mk(nxt, label='live participants'))
                else:
                    out.append(mk('remove_stat', label='no participants'))
            elif pc == 'remove_published':             # re-read init_state under the beacon
                if objs[fd][1] == READY:
                    out.append(again('Published', objs2=release(objs, fd, i)))
                else:
                    out.append(mk('corrupted', label='LiveParticipants'))
            elif pc == 'corrupted':
                out.append(mk('done', -1, res2='Corrupted', objs2=release(objs, fd, i), label='Corrupted'))
            elif pc == 'remove_stat':                  # fstat: has it a header?
                if objs[fd][0]:
                    out.append(mk('remove_cas', label='sized'))
                else:
                    out.append(mk('remove_same', label='unsized: ours to remove'))
            elif pc == 'remove_cas':                   # CAS EMPTY -> ABANDONED
                if objs[fd][1] == EMPTY:
                    out.append(mk('remove_same', objs2=setobj(fd, state=ABANDONED), label='CAS won'))
                else:
                    out.append(again('CAS lost', objs2=release(objs, fd, i)))
            elif pc == 'remove_same':                  # unlink_if_same: name_inode check
                if name == fd:
                    out.append(mk('remove_unlink', label='name is the object'))
                else:
                    out.append(again('name moved on', objs2=release(objs, fd, i)))
            elif pc == 'remove_unlink':                # shm_unlink
                out.append(again('unlinked', objs2=release(objs, fd, i), name2=-1))
            else:
                raise AssertionError(pc)
        return out

    def release(objs, k, i):
        o = list(objs)
        s, w, b, ps = o[k]
        o[k] = (s, w, -1 if b == i else b, ps)
        return tuple(o)

    def check(st):
        (name, objs, alive, crashes, hostile), locs = st
        for i in range(P):
            pc, fd, left, res = locs[i]
            if pc.startswith('BAD'):
                return f'process {i}: {pc[4:]}'
            if res == 'Corrupted' and hostile is False:
                return f'process {i} says Corrupted, yet no peer wrote the segment'
            if not alive[i] or pc != 'done' or not isinstance(res, tuple):
                continue
            if hostile is not False and i not in hostile:
                continue
            if name != res[1]:
                return f'split name: live process {i} holds object {res[1]}, the name refers to {name}'
        return None

    def finished(st, has_steps):
        (name, objs, alive, crashes, hostile), locs = st
        return all((not alive[j]) or locs[j][0] == 'done' or (locs[j][0] == 'late' and not has_steps)
                   for j in range(P))

    r = explore((init, init_locals), lambda st: [((a, b), l) for a, b, l in steps(st)], check, finished,
                lambda s: f'name={s[0][0]} objs={s[0][1]} alive={s[0][2]} locs={s[1]}')
    if isinstance(r, str):
        return r
    _, seen, good = r
    outcomes = sorted({str(l[3]) for s in good for l in s[1]})
    return f'ok: {len(seen)} states, {len(good)} terminal; outcomes {", ".join(outcomes)}'

if __name__ == '__main__':
    for a in sys.argv[1:]:
        if a.startswith('crashes='):
            MAXCRASH = int(a.split('=')[1])
        elif a == 'hostile':
            HOSTILE = True
        else:
            MUT.add(a)
    label = ' '.join(sorted(MUT | ({'hostile'} if HOSTILE else set())))
    failed = False
    cases = [(2, 2), (2, 3), (3, 2), (3, 3)]
    if HOSTILE:
        cases = [(2, 3), (3, 2), (3, 3), (4, 2)]  # the last process is the late one
    elif MAXCRASH >= 2:
        cases = [(2, 2), (2, 3), (3, 2)]  # 3 processes with a budget of 3 outgrow 30 minutes
    for P, budget in cases:
        r = run(P, budget)
        failed |= r.startswith('VIOLATION')
        print(f'{label} crashes={MAXCRASH} processes={P} budget={budget}:', r, flush=True)
        if failed:
            break
    sys.exit(1 if failed else 0)
