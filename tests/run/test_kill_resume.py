"""SIGKILL a run mid-way, resume it: no completed call repeated, no response lost or duplicated."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from runhelpers import make_study, make_trials

from tests.support.fake_openai import FakeOpenAI, content_key
from tests.support.runstore import final_trial_ids

CHILD = r"""
import os, sys, pandas as pd
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
from llmexp.spec import Study
from llmexp.runner import run_study
study = Study.model_validate_json(open(sys.argv[1]).read())
trials = pd.read_json(sys.argv[2], orient="records", lines=True, dtype=False)
run_study(study, trials, run_dir=sys.argv[3], use_cache=False, progress=False, concurrency=4)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_then_resume(tmp_path):
    with FakeOpenAI(latency=0.1) as server:
        study = make_study(params={"openai/fake-model": {"api_base": server.api_base, "api_key": "sk-fake"}}, n_units=4, replicates=4)
        trials = make_trials(study)
        assert len(trials) == 160
        spec = tmp_path / "study.json"
        spec.write_text(study.model_dump_json())
        table = tmp_path / "trials.jsonl"
        trials.to_json(table, orient="records", lines=True)
        run_dir = tmp_path / "run"
        script = tmp_path / "child.py"
        script.write_text(CHILD)
        env = dict(os.environ)
        proc = subprocess.Popen([sys.executable, str(script), str(spec), str(table), str(run_dir)], env=env)
        try:
            deadline = time.monotonic() + 60
            while len(final_trial_ids(run_dir)) < 30:
                assert proc.poll() is None, "the run ended before it could be killed"
                assert time.monotonic() < deadline, "the run made no progress"
                time.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL

        saved = final_trial_ids(run_dir)
        assert 30 <= len(saved) < len(trials)
        before = server.snapshot()
        by_id = {r["trial_id"]: content_key(json.loads(r["messages"])) for r in trials.to_dict("records")}

        # resume in a fresh process (same command), to the end
        done = subprocess.run([sys.executable, str(script), str(spec), str(table), str(run_dir)], env=env, timeout=120)
        assert done.returncode == 0
        after = server.snapshot()

    for tid in saved:  # no completed call was asked again
        assert after[by_id[tid]] == before[by_id[tid]], tid
    con = sqlite3.connect(run_dir / "store.sqlite")
    ids = [r[0] for r in con.execute("SELECT trial_id FROM responses")]
    statuses = {r[0] for r in con.execute("SELECT status FROM responses")}
    con.close()
    assert len(ids) == len(trials) and len(set(ids)) == len(ids)  # nothing lost, nothing duplicated
    assert set(ids) == set(trials["trial_id"])
    assert statuses == {"ok"}
    # only calls in flight at the kill could have been served twice
    repeated = [k for k, v in after.items() if v > 1]
    assert len(repeated) <= 4 + 64  # concurrency + one unflushed write batch at most
