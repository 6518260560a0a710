"""The exhaustive search the models share: breadth-first over every interleaving, a safety
check on every state, and a liveness check (from every reachable state a finished state is
reachable), with the shortest trace to the first violation.

`explore(start, steps, check, finished, show)`:
  steps(state)    -> [(next_state, label)]: every step any process can take
  check(state)    -> None, or what is wrong in it
  finished(state, has_steps) -> whether the state counts as finished (all live processes done)
  show(state)     -> one line describing a state, for traces
Returns ('ok', states, finished_states) or ('VIOLATION ...' text).
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
