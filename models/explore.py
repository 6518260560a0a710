"""The exhaustive search the models share: breadth-first over every interleaving, a safety
check on every state, and a liveness check (from every reachable state a finished state is
reachable), with the shortest trace to the first violation.

`explore(start, steps, check, finished, show)`:
  steps(state)    -> [(next_state, label)]: every step any process can take
  check(state)    -> None, or what is wrong in it
  finished(state, has_steps) -> whether the state counts as finished (all live processes done)
  show(state)     -> one line describing a state, for traces
Returns ('ok', states, finished_states) or ('VIOLATION ...' text).

`explore_live(...)`: the same, with a liveness check in which kills (and cancels) are not
progress; the newer models use it.
"""
from collections import deque


def explore(start, steps, check, finished, show):
    seen = {start: None}
    preds = {}
    good = []
    q = deque([start])
    while q:
        st = q.popleft()
        err = check(st)
        if err:
            return report(seen, st, err, show)
        nxt = steps(st)
        if finished(st, bool(nxt)):
            good.append(st)
        elif not nxt:
            return report(seen, st, 'deadlock', show)
        for n, label in nxt:
            preds.setdefault(n, []).append(st)
            if n not in seen:
                seen[n] = (st, label)
                q.append(n)
    ok = set(good)
    stack = list(good)
    while stack:
        s = stack.pop()
        for p in preds.get(s, ()):
            if p not in ok:
                ok.add(p)
                stack.append(p)
    stuck = [s for s in seen if s not in ok]
    if stuck:
        return report(seen, stuck[0], f'livelock: {len(stuck)} states cannot finish', show)
    return ('ok', seen, good)


def report(seen, st, err, show, last=40):
    path = []
    cur = st
    while seen[cur] is not None:
        prev, label = seen[cur]
        path.append((label, cur))
        cur = prev
    path.reverse()
    lines = [f'VIOLATION: {err}']
    for label, s in path[-last:]:
        lines.append(f'  {label:34} {show(s)}')
    return '\n'.join(lines)


def explore_live(start, steps, check, finished, show, not_progress=('kill', 'cancel')):
    """`explore` for the safety checks over every reachable state, then a stricter liveness
    check: steps whose label starts with one of `not_progress` (kills, cancels) do not count
    as progress, so from every reachable state the live processes must be able to finish with
    nobody else killed or dropped (in `explore`'s own check, a kill of the one stuck process
    counts as its finishing). A hang is reported with the shortest trace to a state that
    cannot finish, then a few of the steps the stuck processes keep taking."""
    r = explore(start, steps, check, lambda st, has_steps: True, show)
    if isinstance(r, str):
        return r
    _, seen, _ = r
    def succ(s):
        return [(n, label) for n, label in steps(s) if not label.startswith(not_progress)]

    preds = {}
    good = []
    for s in seen:
        nxt = succ(s)
        if finished(s, bool(nxt)):
            good.append(s)
        for n, _ in nxt:
            preds.setdefault(n, []).append(s)
    ok = set(good)
    stack = list(good)
    while stack:
        s = stack.pop()
        for p in preds.get(s, ()):
            if p not in ok:
                ok.add(p)
                stack.append(p)
    stuck = [s for s in seen if s not in ok]
    if not stuck:
        return ('ok', seen, good)
    st = stuck[0]
    lines = report(seen, st, f'hang: {len(stuck)} states cannot finish without another kill', show).split('\n')
    on = {st}
    for _ in range(8):
        nxt = [(n, label) for n, label in succ(st) if n not in on]
        if not nxt:
            break
        st, label = nxt[0]
        on.add(st)
        lines.append(f'  {"(then) " + label:34} {show(st)}')
    lines.append('  ... and so on for ever' if succ(st) else '  (no step left)')
    return '\n'.join(lines)
