"""The order a run asks its trials in, stratified so that any prefix of it is a fair sample.

`--limit N` and `--pilot N` run the first N trials of this order, and a run stopped early
(by `--max-cost`, a signal) has answered a prefix of it, so the prefix must be able to show
an effect. Taking the first N rows of the trial table would give every between-prompt
design only its first cell; instead the order is built by nested round robins:

    (model, design)   one pick from each stratum in turn, so every arm is sampled;
    cell              within an arm, the cells in a spread order (the first and last
                      in compile order, then the middle, then the quarter points...), so
                      two picks already span the range of levels and five show a curve;
    target            within a cell, the outcome first, then each probe (and check), so
                      the outcome of every cell comes before the second answer of any;
    respondent        within a (cell, target), the trials in a seeded random order
                      (the study's seed), so the units, persona draws and replicates a
                      pilot sees are a random sample, the same on every run.

Trials that belong together (the questions of one respondent's conversation in a
`sequence`, each naming the trial it `follows`) are one pick: a limit never splits a
respondent, so a pilot never selects a later question without the one it follows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from llmexp.errors import RunError
from llmexp.seeding import stable_int

# the trial column naming the earlier question of the same conversation (schema.py)
LINK_COLUMN = "follows"


def _linked(value: object) -> bool:
    return value is not None and value == value  # NaN from a pandas table is no link


def cell_key(row: dict) -> str:
    """The cell a row samples: its cell id, or for a prompt showing several conditions the
    set of cells it shows (and its range-split part)."""
    if row.get("cell") is not None:
        return str(row["cell"])
    try:
        conditions = json.loads(row.get("conditions") or "[]")
        cells = sorted(str(c.get("cell")) for c in conditions if isinstance(c, dict))
    except (TypeError, ValueError):
        cells = []
    return "|".join(cells) + f"#{row.get('split')}"


def spread(n: int) -> list[int]:
    """0..n-1 in an order whose every prefix spans the range: ends first, then the midpoint
    of each gap, breadth first (11 -> 0, 10, 5, 2, 7, 1, 3, 6, 8, 4, 9)."""
    if n <= 2:
        return list(range(n))
    order = [0, n - 1]
    gaps = [(0, n - 1)]
    while gaps:
        nxt = []
        for lo, hi in gaps:
            if hi - lo < 2:
                continue
            mid = (lo + hi) // 2
            order.append(mid)
            nxt += [(lo, mid), (mid, hi)]
        gaps = nxt
    return order


def round_robin(queues: Sequence[Sequence]) -> list:
    """One item from each queue in turn until all are empty."""
    out: list = []
    active = [q for q in queues if q]
    depth = 0
    while active:  # each round visits only the queues not yet empty: linear in the items
        out.extend(q[depth] for q in active)
        depth += 1
        active = [q for q in active if len(q) > depth]
    return out


def _groups(rows: Iterable[dict]) -> list[list[dict]]:
    """The rows as picks: each conversation (rows chained by `follows` to the same first
    question) together, in first-appearance order."""
    rows = list(rows)
    earlier = {str(r["trial_id"]): str(r[LINK_COLUMN]) for r in rows if _linked(r.get(LINK_COLUMN))}
    groups: dict[str, list[dict]] = {}
    for row in rows:
        root = str(row["trial_id"])
        seen = {root}
        while root in earlier and earlier[root] not in seen:  # a cycle cannot loop forever
            root = earlier[root]
            seen.add(root)
        groups.setdefault(root, []).append(row)
    return list(groups.values())


def _arm_order(groups: list[list[dict]], seed: int) -> list[list[dict]]:
    """One (model, design) stratum's picks: cells in spread order, targets in turn within a
    cell (outcomes first), respondents in a seeded order within a target."""
    cells: dict[str, dict[tuple, list[list[dict]]]] = {}
    for group in groups:
        first = group[0]
        target = (first.get("kind") != "outcome", str(first.get("target")))
        cells.setdefault(cell_key(first), {}).setdefault(target, []).append(group)
    names = list(cells)
    per_cell = []
    for index in spread(len(names)):
        targets = cells[names[index]]
        ordered = [targets[t] for t in sorted(targets, key=lambda t: t[0])]  # stable: compile order within kind
        per_cell.append(round_robin([sorted(q, key=lambda g: stable_int(seed, "sample", g[0]["trial_id"])) for q in ordered]))
    return round_robin(per_cell)


def stratified(rows: list[dict], seed: int) -> list[list[dict]]:
    """The trial rows as picks (lists of linked rows) in the stratified order."""
    arms: dict[tuple, list[list[dict]]] = {}
    for group in _groups(rows):
        arms.setdefault((group[0].get("model"), group[0].get("design")), []).append(group)
    return round_robin([_arm_order(groups, seed) for groups in arms.values()])


def take(picks: list[list[dict]], limit: int | None) -> list[dict]:
    """The rows of the first picks holding at most `limit` trials (a pick that would pass
    the limit is skipped for a smaller later one; at least one pick is taken)."""
    out: list[dict] = []
    for group in picks:
        if limit is not None and out and len(out) + len(group) > limit:
            if len(out) >= limit:
                break
            continue
        out.extend(group)
    return out


def pilot_limit(pilot: int | None, limit: int | None) -> int | None:
    """The number of trials a session selects: `--pilot N` is a limit recorded as a pilot."""
    if pilot is None:
        return limit
    if limit is not None:
        raise RunError("--pilot and --limit both choose a sample of the trials: give one of them")
    if int(pilot) < 1:
        raise RunError("--pilot must be at least 1")
    return int(pilot)
