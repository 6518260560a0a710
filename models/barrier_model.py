#!/usr/bin/env python3
"""Exhaustive model check of the cross-process barrier (`raw::barrier`, `BarrierState`): a word
{arrived, gen, history, broken} changed only by CAS, and a record per party saying at which
generation it last arrived, so that waiters can tell a dead party that will never arrive.

The protocol:
  word      arrived (parties arrived in the current generation), gen (wrapping, here modulo
            `gens=`, 8 by default), history (bit k: generation gen-1-k ended by a break or a
            reset, not by completion; 3 bits; every generation change shifts it left by one
            and sets bit 0), broken.
  party[i]  (gen, arrived): the generation at which party i last arrived; (0, not arrived)
            when its handle opens. A handle is a party: N parties per generation, and here N
            handles (or more: the 3-process N=2 cases).
  wait by party i:
    a1 `load word`        broken -> Broken
    a2 `arrive`           CAS: arrived + 1 == N -> (0, gen+1, history<<1 | 0, not broken): i is
                          the leader; else arrived + 1, same gen g. CAS failed -> a1
    a4 `record arrival (leader)`  party[i] = (g, arrived), then `wake`: Passed
    a3 `record arrival`   (non-leader) party[i] = (g, arrived)
    w1 `load word`        gen != g: d = gen - g (mod), Broken if history bit d-1, else Passed;
                          gen == g and broken -> Broken
    w2 `scan party` j     one step per other party: party[j] != (g, arrived) and j dead ->
    w3 `break`            CAS the word seen at w1 -> broken: Broken (CAS failed -> w1)
    `sleep`               a timed slice, always enabled, back to w1
  `abort` (option)        a controller, once, at any time: CAS broken on
  `reset` (option)        a controller, once, at any time: CAS -> (0, gen+1, history<<1 | 1, not
                          broken)
  A process that gets Broken stops; one that passes goes on to its next round.

  a4 is this model's one change to the protocol as first written (the leader did not record):
  a leader's record then stays at the last generation it arrived in as a non-leader, and a
  party that leads `gens`-1 generations in a row and dies before its next arrival shows a
  record equal to (current gen, arrived): nobody breaks, the others hang
  (`gens=2 case=2,2,3 leader_no_record` shows it; in Rust it takes 2^(gen bits) generations).
  With a4, a dead party's record is at most 2 generations stale when N == P (without resets),
  so any gens >= 3 is exact.

Checks:
  (1) a generation completes only with N arrivals counted in it (the ghost arrivers of the
      generation: N-1 distinct others and the leader), and `arrived` always equals that count
  (2) every outcome is right: Passed iff the waiter's generation completed (ghost record of
      how each generation ended: completion or reset); a waiter whose generation ended more
      than 3 generations back (beyond the history bits) is a violation too: that takes more
      processes than N (`case=3,2,4 crashes=0`) or several resets during one wait
  (3) no false break: with no kill and no abort/reset nobody gets Broken (and, with N == P,
      everyone completes all rounds)
  (4) liveness: from every reachable state every live process can finish (Passed or Broken)
      with nobody else killed. A state also counts as finished when the live parties left
      wait in the current generation for parties that are alive and done (a party that
      stopped after Broken, or, with more processes than N, parties out of rounds): the
      caller's own hang. A dead party that did not arrive never counts: the waiters must
      break. Checked here (`explore_live`), not by explore's own check, which lets a kill of
      the one stuck process count as its finishing.

Usage: python3 barrier_model.py [crashes=2] [abort] [reset] [gens=K] [case=P,N,rounds ...]
[MUTATION ...]. Default cases (processes, N, rounds): (2,2,1) (2,2,2) (3,3,1) (3,3,2) (3,2,1)
(3,2,2). Mutations that must be caught:
  record_first      party record stored before the arrive CAS (a kill between: hang)
  no_scan           waiters never look at the parties (hang when a party dies)
  no_history        any generation change read as Passed (with `reset`: wrong outcome)
  break_alive       break on a party that has not arrived, without asking liveness (false break)
  leader_no_record  the protocol as first written, without a4 (with `gens=2 case=2,2,3`: hang)
"""
import sys

from explore import explore, explore_live, report

MUT = set()
OPT = set()
MAXCRASH = 1
GENS = 8
HBITS = 3
HMASK = (1 << HBITS) - 1
CASES = []


def run(P, N, rounds):
    # word: (arrived, gen, history, broken); party: ((gen, arrived),) * P
    # ctrl: (abort done, reset done); ghost: (ends, arrivers) where ends[g] is 'done' or
    # 'reset' for each absolute generation that ended, arrivers the pids counted in the current
    # local: (pc, j, g, seen, k, gabs, outs): pc, scan index, gen of the wait (mod GENS), word
    # seen, rounds done, absolute gen of the wait, outcomes (('P'|'B'|'?', gabs or None), ...)
    word0 = (0, 0, 0, False)
    init = (word0, tuple([(0, False)] * P), tuple([True] * P), 0, (False, False), ((), ()))
    loc0 = ('a1', 0, 0, None, 0, 0, ())
    init_locals = tuple([loc0] * P)
    waiting = ('w1', 'w2', 'w3', 'sleep')

    def steps(st):
        (word, party, alive, crashes, ctrl, ghost), locs = st
        arrived, gen, hist, broken = word
        ends, arrivers = ghost
        out = []

        def shared(word=word, party=party, alive=alive, crashes=crashes, ctrl=ctrl, ghost=ghost):
            return (word, party, alive, crashes, ctrl, ghost)

        # the controller
        if 'abort' in OPT and not ctrl[0]:
            nw = (arrived, gen, hist, True)
            out.append(((shared(word=nw, ctrl=(True, ctrl[1])), locs), 'abort'))
        if 'reset' in OPT and not ctrl[1]:
            nw = (0, (gen + 1) % GENS, ((hist << 1) | 1) & HMASK, False)
            out.append(((shared(word=nw, ctrl=(ctrl[0], True), ghost=(ends + (('reset',),), ())), locs), 'reset'))

        for i in range(P):
            if not alive[i]:
                continue
            pc, j, g, seen, k, gabs, outs = locs[i]
            if pc == 'done':
                continue
            if crashes < MAXCRASH:
                a = list(alive); a[i] = False
                out.append(((shared(alive=tuple(a), crashes=crashes + 1), locs), f'kill {i}'))

            def mk(nloc, label, **kw):
                l = list(locs); l[i] = nloc
                return ((shared(**kw), tuple(l)), f'{label} {i}')

            def ret(outcome, ga, label, **kw):
                # return from wait: Broken stops the process, Passed goes on to the next round
                nouts = outs + ((outcome, ga),)
                if outcome == 'P' and k + 1 < rounds:
                    return mk(('a1', 0, 0, None, k + 1, 0, nouts), label, **kw)
                return mk(('done', 0, 0, None, k + 1, 0, nouts), label, **kw)

            if pc == 'a1':
                if broken:
                    out.append(ret('B', None, 'load word: broken'))
                elif 'record_first' in MUT:
                    out.append(mk(('ar', 0, gen, word, k, 0, outs), 'load word'))
                else:
                    out.append(mk(('a2', 0, gen, word, k, 0, outs), 'load word'))
            elif pc == 'ar':                                # mutation: record before the CAS
                np = list(party); np[i] = (g, True)
                out.append(mk(('a2', 0, g, seen, k, 0, outs), 'record arrival', party=tuple(np)))
            elif pc == 'a2':                                # arrive
                if word != seen:
                    out.append(mk(('a1', 0, 0, None, k, 0, outs), 'arrive CAS failed'))
                elif seen[0] + 1 == N:                      # the leader: generation done
                    nw = (0, (gen + 1) % GENS, (hist << 1) & HMASK, False)
                    ng = (ends + (('done', i, arrivers),), ())
                    nxt = 'wake' if 'leader_no_record' in MUT else 'a4'
                    out.append(mk((nxt, 0, g, None, k, len(ends), outs), 'arrive (leader)', word=nw, ghost=ng))
                else:
                    nw = (arrived + 1, gen, hist, broken)
                    ng = (ends, tuple(sorted(arrivers + (i,))))
                    nxt = 'w1' if 'record_first' in MUT else 'a3'
                    out.append(mk((nxt, 0, g, None, k, len(ends), outs), 'arrive', word=nw, ghost=ng))
            elif pc == 'a4':                                # the leader's record, after its CAS
                np = list(party); np[i] = (g, True)
                out.append(mk(('wake', 0, g, None, k, gabs, outs), 'record arrival (leader)', party=tuple(np)))
            elif pc == 'wake':                              # futex wake of the word's sleepers
                out.append(ret('P', gabs, 'wake'))
            elif pc == 'a3':
                np = list(party); np[i] = (g, True)
                out.append(mk(('w1', 0, g, None, k, gabs, outs), 'record arrival', party=tuple(np)))
            elif pc == 'w1':
                if gen != g:
                    d = (gen - g) % GENS
                    if 'no_history' in MUT:
                        out.append(ret('P', gabs, 'load word: passed'))
                    elif d - 1 >= HBITS:
                        out.append(ret('?', gabs, 'load word: history too short'))
                    elif (hist >> (d - 1)) & 1:
                        out.append(ret('B', gabs, 'load word: ended broken'))
                    else:
                        out.append(ret('P', gabs, 'load word: passed'))
                elif broken:
                    out.append(ret('B', gabs, 'load word: broken'))
                elif 'no_scan' in MUT:
                    out.append(mk(('sleep', 0, g, word, k, gabs, outs), 'load word'))
                else:
                    j0 = 1 if i == 0 else 0
                    out.append(mk(('w2', j0, g, word, k, gabs, outs), 'load word'))
            elif pc == 'w2':                                # scan party j
                if party[j] != (g, True) and (not alive[j] or 'break_alive' in MUT):
                    out.append(mk(('w3', j, g, seen, k, gabs, outs), f'scan party {j}: dead'))
                else:
                    nj = j + 1
                    if nj == i:
                        nj += 1
                    if nj < P:
                        out.append(mk(('w2', nj, g, seen, k, gabs, outs), f'scan party {j}'))
                    else:
                        out.append(mk(('sleep', 0, g, seen, k, gabs, outs), f'scan party {j}'))
            elif pc == 'w3':                                # break
                if word == seen:
                    nw = (arrived, gen, hist, True)
                    out.append(ret('B', gabs, 'break', word=nw))
                else:
                    out.append(mk(('w1', 0, g, None, k, gabs, outs), 'break CAS failed'))
            elif pc == 'sleep':                             # timed slice (or a wake)
                out.append(mk(('w1', 0, g, None, k, gabs, outs), 'sleep'))
        return out

    def check(st):
        (word, party, alive, crashes, ctrl, ghost), locs = st
        arrived, gen, hist, broken = word
        ends, arrivers = ghost
        if gen != len(ends) % GENS:
            return f'word gen {gen} but {len(ends)} generations ended'
        if arrived != len(arrivers) or len(set(arrivers)) != len(arrivers):
            return f'arrived {arrived} but the arrivals counted in this generation are {arrivers}'
        if ends and ends[-1][0] == 'done':
            _, leader, arr = ends[-1]
            if len(arr) != N - 1 or leader in arr:
                return f'generation {len(ends) - 1} completed by leader {leader} with arrivals {arr}'
        for i in range(P):
            for o, ga in locs[i][6]:
                if o == '?':
                    return f'process {i}: generation {ga} ended beyond the history bits'
                done = ga is not None and ga < len(ends) and ends[ga][0] == 'done'
                if o == 'P' and not done:
                    return f'process {i} Passed, but generation {ga} did not complete ({ends})'
                if o == 'B' and done:
                    return f'process {i} Broken, but generation {ga} completed'
                if o == 'B' and crashes == 0 and not any(ctrl):
                    return f'process {i} Broken with no kill, abort or reset (false break)'
        if crashes == 0 and not any(ctrl) and N == P and all(l[0] == 'done' for l in locs):
            if any(len(l[6]) != rounds for l in locs):
                return 'with no kill, abort or reset somebody did not complete all rounds'
        return None

    def finished(st, has_steps):
        (word, party, alive, crashes, ctrl, ghost), locs = st
        arrived, gen, hist, broken = word
        ends, arrivers = ghost
        left = [i for i in range(P) if alive[i] and locs[i][0] != 'done']
        if not left:
            return True
        # the caller's own hang: waiting in the current generation, not broken, for parties
        # that did not arrive in it and are alive and done
        if broken or any(locs[i][0] not in waiting or locs[i][2] != gen for i in left):
            return False
        return all(alive[j] and locs[j][0] == 'done' for j in range(P) if j not in arrivers)

    def show(s):
        (word, party, alive, crashes, ctrl, ghost), locs = s
        return f'word={word} party={party} alive={alive} ends={ghost[0]} locs={[l[:3] + l[4:5] for l in locs]}'

    r = explore_live((init, init_locals), steps, check, finished, show)
    if isinstance(r, str):
        return r
    _, seen, good = r
    return f'ok: {len(seen)} states, {len(good)} finished'


if __name__ == '__main__':
    import time
    for a in sys.argv[1:]:
        if a.startswith('crashes='):
            MAXCRASH = int(a.split('=')[1])
        elif a.startswith('gens='):
            GENS = int(a.split('=')[1])
        elif a.startswith('case='):
            CASES.append(tuple(int(x) for x in a.split('=')[1].split(',')))
        elif a in ('abort', 'reset'):
            OPT.add(a)
        else:
            MUT.add(a)
    bad = False
    for P, N, rounds in CASES or [(2, 2, 1), (2, 2, 2), (3, 3, 1), (3, 3, 2), (3, 2, 1), (3, 2, 2)]:
        t = time.time()
        r = run(P, N, rounds)
        bad = bad or r.startswith('VIOLATION')
        print(f'{" ".join(sorted(OPT | MUT))} processes={P} N={N} rounds={rounds} '
              f'({time.time() - t:.1f} s):', r, flush=True)
        if r.startswith('VIOLATION'):
            break
    sys.exit(1 if bad else 0)
