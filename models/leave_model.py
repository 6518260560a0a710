#!/usr/bin/env python3
"""Exhaustive model check of removing a segment's name once no live process holds it, against
processes that open it meanwhile: `Options::remove_with_last_user` (the last handle out removes
the name, in `Segment`'s drop), `inspect::collect_garbage` / `remove_unused` (a collector
removes a segment only dead processes held), and the name checks of `Segment::finish` in
src/segment/mod.rs, for processes killed at any step.

Steps, named as in the Rust code:

  Holders (registered handles of the named object, flag set) leave:
    deregister      free our participant record, drop our beacon
    leave_lock      beacon_range_try_lock over every beacon (INIT_BEACON and all participants):
                    somebody's beacon held -> a live user remains: done
    leave_same      the name must still refer to our object (shm_inode), else done
    leave_unlink    shm_unlink; closing the descriptor drops the range lock
  A collector (`gc`) does the same from leave_lock on, without having been a participant.
  Openers (`open_or_create`):
    open            shm_open: NotFound -> create (a new object under the name, O_EXCL)
    register        take a participant beacon: fails while a remover holds the range; then
                    the name check below decides (gone: NotFound; still there: try again)
    joined          name_inode after registering: the name must still refer to our object, or
                    we deregister and answer NotFound (then create afresh)
    create          a new object under the free name (or AlreadyExists: open again)

A killed process drops every beacon and range lock it held; its participant record stays
taken (the object then has a dead participant: garbage once nobody live holds it).

Checks:
  split name    every live process that holds an object (an original holder not yet gone, or
                an opener that joined or created) holds the object the name refers to
  left behind   once every process has finished and none was killed, if no live process
                holds the named object the name is gone (the last one out removed it)
  progress      from every reachable state all live processes can finish

Usage: python3 leave_model.py [crashes=N] [MUTATION ...]. Mutations that must be caught:
  test_range          removers test the beacons (F_OFD_GETLK) and decide without holding them
  unlock_early        removers drop the range lock before the unlink
  no_join_check       openers do not re-check the name after registering
  no_remover_check    removers do not check that the name still refers to their object
  no_leave            a leaving holder does not try to remove the name (creator-owned names)
"""
import sys

from explore import explore

MUT = set()
MAXCRASH = 1


def run(H, O, G, budget):
    """H holders of object 0 (the named one), O openers, G collectors."""
    P = H + O + G
    # object: (participants (pids with a taken record), beacons held (pids), range holder or -1)
    # shared: (name (object index or -1), objects, alive, crashes)
    # local: (pc, obj, budget, result)
    objs0 = ((tuple(range(H)), tuple(range(H)), -1),)
    init = (0, objs0, tuple([True] * P), 0)
    locs0 = tuple([('deregister', 0, budget, 'holds')] * H + [('open', -1, budget, None)] * O
                  + [('gc_open', -1, budget, None)] * G)

    def steps(st):
        (name, objs, alive, crashes), locs = st
        out = []
        for i in range(P):
            if not alive[i]:
                continue
            pc, ob, left, res = locs[i]
            if pc == 'done':
                continue
            if crashes < MAXCRASH:
                a = list(alive)
                a[i] = False
                o = tuple((ps, tuple(b for b in bs if b != i), -1 if r == i else r) for (ps, bs, r) in objs)
                out.append(((name, o, tuple(a), crashes + 1), locs, f'kill {i}'))

            def mk(pc2, ob2=ob, left2=left, res2=res, name2=name, objs2=objs, label=''):
                loc = list(locs)
                loc[i] = (pc2, ob2, left2, res2)
                return ((name2, objs2, alive, crashes), tuple(loc), f'{i}: {label}')

            def setobj(k, **kw):
                o = list(objs)
                ps, bs, r = o[k]
                o[k] = (kw.get('parts', ps), kw.get('beacons', bs), kw.get('range', r))
                return tuple(o)

            def range_free(k):
                # every beacon free (ours are already dropped) and no other range lock
                ps, bs, r = objs[k]
                return not [b for b in bs if b != i] and r in (-1, i)

            if pc == 'deregister':                     # drop: deregister (record free, beacon off)
                ps, bs, _ = objs[ob]
                o = setobj(ob, parts=tuple(p for p in ps if p != i), beacons=tuple(b for b in bs if b != i))
                nxt = 'done' if 'no_leave' in MUT else 'leave_lock'
                out.append(mk(nxt, res2='left', objs2=o, label='deregister'))
            elif pc in ('leave_lock', 'gc_lock'):      # beacon_range_try_lock
                if not range_free(ob):
                    out.append(mk('done', label='somebody holds a beacon'))
                elif 'test_range' in MUT:
                    out.append(mk('remove_same', label='beacons free (tested)'))
                else:
                    out.append(mk('remove_same', objs2=setobj(ob, range=i), label='range locked'))
            elif pc == 'gc_open':                      # the collector: shm_open, garbage rule
                if name == -1:
                    out.append(mk('done', label='NotFound'))
                else:
                    ps, bs, _ = objs[name]
                    # garbage: nobody alive holds it and somebody died in it (a taken record)
                    dead = [p for p in ps if not alive[p]]
                    if dead and not bs:
                        out.append(mk('gc_lock', name, label='garbage'))
                    else:
                        out.append(mk('done', label='not garbage'))
            elif pc == 'remove_same':                  # name_inode == ours?
                if name == ob or 'no_remover_check' in MUT:
                    nxt = 'remove_unlock_first' if 'unlock_early' in MUT else 'remove_unlink'
                    out.append(mk(nxt, label='name is ours'))
                else:
                    out.append(mk('done', objs2=setobj(ob, range=-1) if objs[ob][2] == i else objs, label='name moved on'))
            elif pc == 'remove_unlock_first':          # mutation: unlock, then unlink
                out.append(mk('remove_unlink', objs2=setobj(ob, range=-1), label='range unlocked early'))
            elif pc == 'remove_unlink':                # shm_unlink, close (drops the range)
                o = setobj(ob, range=-1) if objs[ob][2] == i else objs
                out.append(mk('done', res2='removed', objs2=o, name2=-1, label='unlink'))
            elif pc == 'open':                         # shm_open
                if name == -1:
                    out.append(mk('create', -1, label='NotFound'))
                else:
                    out.append(mk('register', name, label='shm_open'))
            elif pc == 'register':                     # take a participant beacon
                ps, bs, r = objs[ob]
                if r != -1 and r != i:
                    out.append(mk('reg_failed', label='all beacons held'))
                else:
                    o = setobj(ob, parts=ps + (i,), beacons=bs + (i,))
                    nxt = 'done_joined' if 'no_join_check' in MUT else 'joined'
                    out.append(mk(nxt, objs2=o, label='registered'))
            elif pc == 'reg_failed':                   # name still ours? retry; gone: NotFound
                if name != ob:
                    out.append(mk('create', -1, label='name gone: NotFound'))
                elif left <= 1:
                    out.append(mk('done', -1, 0, 'TooManyParticipants', label='give up'))
                else:
                    out.append(mk('register', left2=left - 1, label='retry'))
            elif pc == 'joined':                       # name_inode after registering
                if name == ob:
                    out.append(mk('deregister', res2='holds', label='joined'))
                else:
                    ps, bs, _ = objs[ob]
                    o = setobj(ob, parts=tuple(p for p in ps if p != i), beacons=tuple(b for b in bs if b != i))
                    out.append(mk('create', -1, objs2=o, label='name gone: deregister, NotFound'))
            elif pc == 'done_joined':
                out.append(mk('deregister', res2='holds', label='joined (unchecked)'))
            elif pc == 'create':                       # open_or_create: create afresh
                if name == -1:
                    k = len(objs)
                    o = objs + (((i,), (i,), -1),)
                    out.append(mk('deregister', k, res2='holds', name2=k, objs2=o, label='created'))
                elif left <= 1:
                    out.append(mk('done', -1, 0, 'gave up', label='give up'))
                else:
                    out.append(mk('open', -1, left - 1, label='AlreadyExists'))
            else:
                raise AssertionError(pc)
        return out

    def check(st):
        (name, objs, alive, crashes), locs = st
        for i in range(P):
            pc, ob, left, res = locs[i]
            if alive[i] and res == 'holds' and ob != name:
                return f'split name: live process {i} holds object {ob}, the name refers to {name}'
        if crashes == 0 and all(l[0] == 'done' for l in locs) and name != -1:
            return f'left behind: everybody left object {name}, yet the name remains'
        return None

    def finished(st, has_steps):
        (name, objs, alive, crashes), locs = st
        return all((not alive[j]) or locs[j][0] == 'done' for j in range(P))

    r = explore((init, locs0), lambda st: [((a, b), l) for a, b, l in steps(st)], check, finished,
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
        else:
            MUT.add(a)
    label = ' '.join(sorted(MUT)) or 'correct'
    failed = False
    # (holders, openers, collectors, retry budget)
    for H, O, G, budget in [(1, 1, 0, 2), (2, 1, 0, 2), (1, 2, 0, 2), (1, 1, 1, 2), (2, 1, 1, 2), (1, 2, 1, 2)]:
        r = run(H, O, G, budget)
        failed |= r.startswith('VIOLATION')
        print(f'{label} crashes={MAXCRASH} holders={H} openers={O} collectors={G} budget={budget}:', r, flush=True)
        if failed:
            break
    sys.exit(1 if failed else 0)
