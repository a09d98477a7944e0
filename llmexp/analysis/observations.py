"""Explode the response table into one row per (call, condition) with a numeric outcome.

Every analysis starts here. Rules (see docs/analysis.md):

- only valid rows (``valid`` true and ``status == "ok"``) are kept; invalid calls and
  missing per-condition answers are counted in ``Observations.invalid``;
- binary outcomes: ``y`` = P(first label) when ``probs`` is present, else the 0/1 ``value``;
  per-condition answers (``within``/``aggregate``) come from ``condition_values``; a
  per-condition binary answer given on a 0-100 scale (answer spec ``high == 100``) is divided
  by 100 so shares are always in [0, 1];
- each treatment gets ``lvl__<name>`` (the level as given) and the primary treatment (the first
  with numeric levels) gets ``level`` (float: the normalised level, e.g. 0..2 x regular price)
  and ``shown`` (the value stated in the prompt, float when numeric);
- persona attributes become ``persona__<attr>``, pinned covariates ``pin__<name>`` and unit
  columns ``unit__<col>``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from llmexp import answers, modes, schema
from llmexp.errors import AnalysisError
from llmexp.spec import Study

REQUIRED = schema.names("design", "mode", "model", "kind", "target", "unit_id", "conditions", "valid", "value")


def _loads(x: Any) -> Any:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return None
    if isinstance(x, (dict, list)):
        return x
    try:
        return json.loads(x)
    except (TypeError, ValueError):
        return None


def to_float(x: Any) -> float:
    """Best-effort number: floats, ints, bools, '$9.43', '12%'; NaN otherwise."""
    if x is None:
        return float("nan")
    if isinstance(x, bool):
        return float(x)
    if isinstance(x, (int, float, np.number)):
        return float(x)
    s = str(x).strip().replace("$", "").replace(",", "").rstrip("%").strip()
    try:
        return float(s)
    except ValueError:
        return float("nan")


def primary_treatment(study: Study) -> str:
    """First treatment whose levels are all numeric (else the first treatment)."""
    for t in study.treatments:
        if all(not np.isnan(to_float(v)) and not isinstance(v, bool) for v in t.levels):
            return t.name
    return study.treatments[0].name


def is_numeric_treatment(study: Study, name: str) -> bool:
    t = study.treatment(name)
    return all(not isinstance(v, (str, bool)) for v in t.levels)


@dataclass
class Observations:
    table: pd.DataFrame  # one row per valid (call, condition)
    invalid: pd.DataFrame  # per design/model/kind/target: calls, invalid calls, missing, exact copies

    def outcomes(self, name: str | None = None) -> pd.DataFrame:
        t = self.table[self.table["kind"] == "outcome"]
        return t if name is None else t[t["target"] == name]

    def probes(self, name: str | None = None) -> pd.DataFrame:
        t = self.table[self.table["kind"] == "probe"]
        return t if name is None else t[t["target"] == name]


def _answer_value(raw: Any, labels: tuple, binary: bool) -> float:
    if isinstance(raw, str) and labels:
        if raw == labels[0]:
            return 1.0 if binary else 0.0
        if raw in labels:
            return 0.0 if binary else float(labels.index(raw))
    return to_float(raw)


def _na_aware_codes(s: pd.Series) -> tuple[np.ndarray, list]:
    """Codes and distinct values of a column, as ``.tolist()`` would give them, computed
    once per distinct value. Missing values keep their own object (None vs NaN matter to
    some rules), one code per type of missing value."""
    try:
        codes, uniq = pd.factorize(s, use_na_sentinel=True)
    except TypeError:  # unhashable cells (dicts, lists): one code per row
        vals = s.tolist()
        return np.arange(len(vals), dtype=np.int64), vals
    values = list(uniq.tolist()) if not isinstance(uniq, list) else list(uniq)
    codes = np.asarray(codes, dtype=np.int64)
    na = codes < 0
    if na.any():
        na_vals = s.to_numpy(dtype=object)[na]
        types = np.frompyfunc(type, 1, 1)(na_vals)
        tcodes, tuniq = pd.factorize(types)
        first = {}
        for i, t in enumerate(tcodes):
            if t not in first:
                first[t] = na_vals[i]
            if len(first) == len(tuniq):
                break
        base = len(values)
        values.extend(first[t] for t in range(len(tuniq)))
        codes[na] = base + np.asarray(tcodes, dtype=np.int64)
    return codes, values


def _column_codes(responses: pd.DataFrame, name: str, default: Any = None) -> tuple[np.ndarray, list]:
    if name in responses.columns:
        return _na_aware_codes(responses[name])
    return np.zeros(len(responses), dtype=np.int64), [default]


def _obj(values: list) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values if values else []
    return out


def _combine(*codes: np.ndarray) -> np.ndarray:
    """One code per distinct tuple of codes, numbered in order of first appearance."""
    if len(codes) == 1:
        return pd.factorize(codes[0])[0]
    frame = pd.DataFrame({i: c for i, c in enumerate(codes)})
    return frame.groupby(list(frame.columns), sort=False).ngroup().to_numpy()


class SeenPrompts:
    """Exact copies across the batches of a streamed table (`stream.py`): a hash of each
    kept copy's (design, model, kind, target, messages, params), sorted. A 64-bit hash: two
    different prompts collide with probability about n^2 / 2^65 (3e-6 at ten million)."""

    def __init__(self) -> None:
        self.keys = np.empty(0, dtype=np.uint64)

    def seen_before(self, frame: pd.DataFrame) -> np.ndarray:
        """Which rows of `frame` (the key columns as text) an earlier batch already kept."""
        h = pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy(np.uint64)
        earlier = np.zeros(len(h), dtype=bool)
        if len(self.keys):
            pos = np.minimum(np.searchsorted(self.keys, h), len(self.keys) - 1)
            earlier = self.keys[pos] == h
        # two sorted runs: the stable sort merges them in linear time
        self.keys = np.sort(np.concatenate([self.keys, np.unique(h[~earlier])]), kind="stable")
        return earlier


def build_observations(study: Study, responses: pd.DataFrame, allow_empty: bool = False,
                       seen: SeenPrompts | None = None) -> Observations:
    """`allow_empty`: a table with no valid response gives an empty table (one batch of a
    streamed table) instead of the error; `seen`: exact copies met in earlier batches."""
    missing = [c for c in REQUIRED if c not in responses.columns]
    if missing:
        raise AnalysisError(
            f"the response table lacks column(s) {', '.join(missing)} (see docs/artifacts.md)"
        )
    x = _Explode(study, responses)
    x.seen = seen
    rows = x.valid_rows()
    per_cond = x.per_condition_mask(rows)
    exploded = (x.per_condition_rows(rows[per_cond]), x.single_condition_rows(rows[~per_cond]))
    parts = [p for p in exploded if p is not None]
    o_row = np.concatenate([p[0] for p in parts]) if parts else np.array([], dtype=np.int64)
    if len(o_row) == 0 and allow_empty:
        return Observations(table=pd.DataFrame(), invalid=x.invalid_table())
    if len(o_row) == 0:
        raise AnalysisError("no valid responses to analyse (every call was invalid or failed)")
    order = np.argsort(o_row, kind="stable")
    o_row = o_row[order]
    o_cond = np.concatenate([p[1] for p in parts])[order]
    o_y = np.concatenate([p[2] for p in parts])[order].astype(float)
    table = _assemble(study, responses, primary_treatment(study), o_row, o_cond, o_y, x.cond_objs,
                      x.kt, x.atype_of)
    return Observations(table=table, invalid=x.invalid_table())


class _Explode:
    """The state `build_observations`' steps share. Columns are coded once per distinct value
    (`_column_codes`); `key` numbers the (design, model, kind, target) groups of the invalid
    counts in order of first appearance, and the per-group counters fill as rows are exploded."""

    seen: SeenPrompts | None = None

    def __init__(self, study: Study, responses: pd.DataFrame):
        self.responses = responses
        n = self.n = len(responses)
        self.c_design, self.v_design = _column_codes(responses, "design")
        self.c_model, self.v_model = _column_codes(responses, "model")
        self.c_kind, self.v_kind = _column_codes(responses, "kind")
        self.c_target, self.v_target = _column_codes(responses, "target")
        self.key = _combine(self.c_design, self.c_model, self.c_kind, self.c_target)
        n_keys = self.n_keys = int(self.key.max()) + 1 if n else 0
        self.first_of_key = np.full(n_keys, -1, dtype=np.int64)
        self.first_of_key[self.key[::-1]] = np.arange(n - 1, -1, -1)  # first row of each key
        self.calls = np.bincount(self.key, minlength=n_keys)
        self.invalid_calls = np.zeros(n_keys, dtype=np.int64)
        self.conditions = np.zeros(n_keys, dtype=np.int64)
        self.missing_conds = np.zeros(n_keys, dtype=np.int64)
        self.copies = np.zeros(n_keys, dtype=np.int64)
        self.kt = _combine(self.c_kind, self.c_target)
        # distinct condition objects: (conditions code, position) or fallback cell code
        self.cond_objs: list[dict] = []
        self.cond_index: dict[tuple, int] = {}
        self.c_conds, v_conds = _column_codes(responses, "conditions")
        self.conds_u = [_loads(x) or [] for x in v_conds]
        self.c_answer, v_answer = _column_codes(responses, "answer")
        self.answer_u = [_loads(x) or {} for x in v_answer]
        self.outcome_specs = {o.name: o.answer for o in study.outcomes}
        self.probe_specs = {c.name: c.probe.answer for c in study.covariates if c.probe is not None}

    def cond_id(self, k: tuple, make) -> int:
        i = self.cond_index.get(k)
        if i is None:
            i = self.cond_index[k] = len(self.cond_objs)
            self.cond_objs.append(make())
        return i

    def valid_rows(self) -> np.ndarray:
        """The valid calls' rows; counts the invalid ones and reads each (kind, target)'s
        answer spec from the first valid row holding it."""
        c_valid, v_valid = _column_codes(self.responses, "valid")
        c_status, v_status = _column_codes(self.responses, "status", "ok")
        valid_u = np.array([bool(v) for v in v_valid], dtype=bool)
        status_u = np.array([v in ("ok", None) for v in v_status], dtype=bool)
        ok = valid_u[c_valid] & status_u[c_status]
        self.invalid_calls = np.bincount(self.key[~ok], minlength=self.n_keys)
        rows = np.flatnonzero(ok)
        uk, first_idx = np.unique(self.kt[rows], return_index=True)
        n_kt = int(self.kt.max()) + 1 if self.n else 0
        self.atype_of = np.empty(n_kt, dtype=object)
        self.binary_of = np.zeros(n_kt, dtype=bool)
        self.labels_of: list = [()] * n_kt
        for code, fi in zip(uk, first_idx):
            r = rows[fi]
            kind, target = self.v_kind[self.c_kind[r]], self.v_target[self.c_target[r]]
            spec = self.outcome_specs.get(target) if kind == "outcome" else self.probe_specs.get(target)
            self.atype_of[code] = spec.type if spec is not None else "number"
            self.labels_of[code] = tuple(spec.labels) if spec is not None else ()
            self.binary_of[code] = spec is not None and answers.get(spec).first_label_share
        return rows

    def per_condition_mask(self, rows: np.ndarray) -> np.ndarray:
        """Which valid rows answer per condition (a per-condition mode or answer, or several
        conditions in one call)."""
        c_mode, v_mode = _column_codes(self.responses, "mode")
        mode_pc = np.array([m in modes.MODES and modes.get(m).per_condition for m in v_mode], dtype=bool)
        ans_pc = np.array([bool(a.get("per_condition")) for a in self.answer_u], dtype=bool)
        conds_pc = np.array([len(c) > 1 for c in self.conds_u], dtype=bool)
        return (ans_pc[self.c_answer] | conds_pc[self.c_conds] | mode_pc[c_mode])[rows]

    def per_condition_rows(self, pc_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(rows, condition ids, y): one observation per condition of a per-condition answer."""
        if not len(pc_rows):
            return None
        responses = self.responses
        cv_col = responses["condition_values"] if "condition_values" in responses.columns else None
        cv_vals = (cv_col.iloc[pc_rows].tolist() if cv_col is not None else [None] * len(pc_rows))
        rr, cc, yy = [], [], []
        ans_scale = [to_float(a.get("high")) == 100 for a in self.answer_u]
        for r, cvx in zip(pc_rows.tolist(), cv_vals):
            kc = self.kt[r]
            labels, binary = self.labels_of[kc], self.binary_of[kc]
            code = self.c_conds[r]
            conds = self.conds_u[code]
            cv = _loads(cvx) or {}
            scale100 = binary and ans_scale[self.c_answer[r]]
            k = self.key[r]
            for pos, c in enumerate(conds):
                self.conditions[k] += 1
                y = _answer_value(cv.get(c.get("cell")), labels, binary)
                if scale100:
                    y = y / 100.0
                if np.isnan(y):
                    self.missing_conds[k] += 1
                    continue
                rr.append(r)
                cc.append(self.cond_id(("c", code, pos), lambda c=c: c))
                yy.append(y)
        return np.asarray(rr, dtype=np.int64), np.asarray(cc, dtype=np.int64), np.asarray(yy, dtype=float)

    def single_condition_rows(self, sc_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(rows, condition ids, y) of one-condition answers: P(first label) when the answer
        has probabilities (exact copies of one prompt counted once), else the value."""
        if not len(sc_rows):
            return None
        k_sc = self.key[sc_rows]
        np.add.at(self.conditions, k_sc, 1)
        y = np.full(len(sc_rows), np.nan)
        keep = np.ones(len(sc_rows), dtype=bool)
        if "probs" in self.responses.columns:
            self._first_label_shares(sc_rows, y, keep)
        need = keep & np.isnan(y)
        if need.any():
            c_value, v_value = _column_codes(self.responses, "value")
            value_u = np.array([to_float(v) for v in v_value], dtype=float)
            y[need] = value_u[c_value[sc_rows[need]]]
        miss = keep & np.isnan(y)
        np.add.at(self.missing_conds, k_sc[miss], 1)
        keep &= ~miss
        kept = sc_rows[keep]
        return kept, self._single_condition_ids(kept), y[keep]

    def _first_label_shares(self, sc_rows: np.ndarray, y: np.ndarray, keep: np.ndarray) -> None:
        """Fill y with P(first label) where a binary answer carries probabilities; of exact
        copies (same group, messages and params) keep one and count the others."""
        c_probs, v_probs = _na_aware_codes(self.responses["probs"])
        probs_u = [_loads(x) for x in v_probs]
        kt_sc = self.kt[sc_rows]
        pc_sc = c_probs[sc_rows]
        pairs = pd.unique(pd.Series(kt_sc.astype(np.int64) * (len(probs_u) + 1) + pc_sc))
        exact = np.zeros(len(sc_rows), dtype=bool)
        for p in pairs:
            kc, pcode = divmod(int(p), len(probs_u) + 1)
            probs, labels = probs_u[pcode], self.labels_of[kc]
            if self.binary_of[kc] and isinstance(probs, dict) and labels and labels[0] in probs:
                m = (kt_sc == kc) & (pc_sc == pcode)
                exact |= m
                y[m] = to_float(probs[labels[0]])
        if exact.any():
            ex_rows = sc_rows[exact]
            c_msg = _column_codes(self.responses, "messages")[0][ex_rows]
            c_par = _column_codes(self.responses, "params")[0][ex_rows]
            dup = pd.DataFrame({"k": self.key[ex_rows], "m": c_msg, "p": c_par}).duplicated().to_numpy().copy()
            if self.seen is not None:  # copies kept by an earlier batch of a streamed table
                cols = [c for c in ("design", "model", "kind", "target", "messages", "params")
                        if c in self.responses.columns]
                first = ex_rows[~dup]
                dup[~dup] = self.seen.seen_before(self.responses[cols].iloc[first])
            d_idx = np.flatnonzero(exact)[dup]
            keep[d_idx] = False
            np.add.at(self.copies, self.key[sc_rows][d_idx], 1)

    def _single_condition_ids(self, kept: np.ndarray) -> np.ndarray:
        """The condition of each kept row: the first listed, else the row's own cell."""
        codes_k = self.c_conds[kept]
        has = np.array([bool(c) for c in self.conds_u], dtype=bool)
        cid_by_conds = np.full(len(self.conds_u), -1, dtype=np.int64)
        for code in np.unique(codes_k[has[codes_k]]) if len(codes_k) else []:
            cid_by_conds[code] = self.cond_id(("c", int(code), 0), lambda code=code: self.conds_u[code][0])
        cid = cid_by_conds[codes_k]
        fb = ~has[codes_k]
        if fb.any():
            c_cell, v_cell = _column_codes(self.responses, "cell")
            cid_by_cell = np.full(len(v_cell), -1, dtype=np.int64)
            cells_k = c_cell[kept[fb]]
            for code in np.unique(cells_k):
                cid_by_cell[code] = self.cond_id(("cell", int(code)), lambda code=code: {
                    "cell": v_cell[code], "levels": {}, "values": {}})
            cid[fb] = cid_by_cell[cells_k]
        return cid

    def invalid_table(self) -> pd.DataFrame:
        """Per (design, model, kind, target): calls, invalid calls, conditions, missing, copies."""
        return pd.DataFrame(
            [
                {"design": self.v_design[self.c_design[r]], "model": self.v_model[self.c_model[r]],
                 "kind": self.v_kind[self.c_kind[r]], "target": self.v_target[self.c_target[r]],
                 "calls": int(self.calls[k]), "invalid_calls": int(self.invalid_calls[k]),
                 "conditions": int(self.conditions[k]), "missing_conditions": int(self.missing_conds[k]),
                 "exact_copies": int(self.copies[k]),
                 "invalid_share": int(self.invalid_calls[k]) / int(self.calls[k]) if self.calls[k] else np.nan}
                for k, r in enumerate(self.first_of_key.tolist())
            ]
        )


def _assemble(study, responses, prim, o_row, o_cond, o_y, cond_objs, kt, atype_of) -> pd.DataFrame:
    from pandas.core.internals.construction import convert_object_array

    cols: dict[str, np.ndarray] = {}

    def passthrough(name: str, default: Any = None, fn=None) -> np.ndarray:
        codes, values = _column_codes(responses, name, default)
        if fn is not None:
            values = [fn(v) for v in values]
        return _obj(values)[codes[o_row]]

    cols["trial_id"] = passthrough("trial_id")
    cols["design"] = passthrough("design")
    cols["mode"] = passthrough("mode")
    cols["model"] = passthrough("model")
    cols["replicate"] = passthrough("replicate", 0)
    cols["kind"] = passthrough("kind")
    cols["target"] = passthrough("target")
    cols["unit_id"] = passthrough("unit_id", fn=str)
    cols["persona_id"] = passthrough("persona_id")
    cols["split"] = passthrough("split", fn=lambda s: s if isinstance(s, str) else None)
    cols["answer_type"] = atype_of[kt[o_row]]

    # dict columns: persona__*, pin__*, unit__* (NaN where a row's dict lacks the key)
    sig_parts = []
    dict_parts = []
    for src, prefix in (("persona", "persona__"), ("pinned", "pin__"), ("unit", "unit__")):
        codes, values = _column_codes(responses, src)
        decoded = [_loads(v) or {} for v in values]
        rc = codes[o_row]
        sig_parts.append(rc)
        dict_parts.append((prefix, decoded, rc))
    tail = ["cell"] + [f"lvl__{t.name}" for t in study.treatments] + ["level", "shown", "y"]
    fixed = list(cols.keys())
    sig = _combine(*sig_parts)
    _, first = np.unique(sig, return_index=True)
    order: list[str] = []
    seen: set = set()
    for i in np.sort(first):
        names = list(fixed)
        for prefix, decoded, rc in dict_parts:
            names += [f"{prefix}{k}" for k in decoded[rc[i]]]
        names += tail
        for nm in names:
            if nm not in seen:
                seen.add(nm)
                order.append(nm)
    for prefix, decoded, rc in dict_parts:
        keys: dict = {}
        for d in decoded:
            keys.update(dict.fromkeys(d))
        for k in keys:
            cols[f"{prefix}{k}"] = _obj([d.get(k, np.nan) for d in decoded])[rc]

    # condition columns, once per distinct condition
    lv_cols: dict[str, list] = {t.name: [] for t in study.treatments}
    cells, levels_f, shown_f = [], [], []
    for c in cond_objs:
        levels = c.get("levels") or {}
        shown = c.get("values") or {}
        cells.append(c.get("cell"))
        for t in study.treatments:
            lv_cols[t.name].append(levels.get(t.name))
        lv = levels.get(prim)
        levels_f.append(to_float(lv))
        shown_f.append(to_float(shown.get(prim, lv)))
    cols["cell"] = _obj(cells)[o_cond]
    for t in study.treatments:
        cols[f"lvl__{t.name}"] = _obj(lv_cols[t.name])[o_cond]
    floats = {"level": np.asarray(levels_f, dtype=float)[o_cond],
              "shown": np.asarray(shown_f, dtype=float)[o_cond], "y": o_y}
    obj_names = [c for c in order if c not in floats]
    converted = convert_object_array([cols[c] for c in obj_names], dtype=None)
    data = dict(zip(obj_names, converted))
    data.update(floats)
    return pd.DataFrame({c: data[c] for c in order}, copy=False)
