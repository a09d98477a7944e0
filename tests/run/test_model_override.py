"""`--model X` runs the same experiment on another model: the study's temperature,
max_tokens, other portable params and replicates are carried over (and said), endpoints,
secrets and provider-specific params are not, explicit overrides win."""

from __future__ import annotations

import json

import pytest
from runhelpers import cli

import llmexp
from llmexp.errors import RunError
from llmexp.runner.override import override_models, parse_param

STUDY = """study "carry" seed 2

units products
  row product_id = "p0", regular_price = 2
  row product_id = "p1", regular_price = 3

treatment price = levels(0.5, 1.5) between

context "You see {{product_id}} for {{price}}."

outcome purchase: binary "yes" / "no"
  question "Would you buy it?"

modes blind

{models}
"""
API = 'model "openai/gpt-4o-mini" api_base "http://localhost:9/v1" temperature 0.3 max_tokens 5 replicates 3'


def _study(tmp_path, models: str = API):
    path = tmp_path / "carry.study"
    path.write_text(STUDY.format(models=models))
    return path


def _manifest_model(out) -> dict:
    return json.loads((out / "manifest.json").read_text())["models"][0]


def test_cli_model_keeps_the_study_params_and_replicates_and_says_so(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli(["run", _study(tmp_path), "--model", "synthetic/respondent", "-o", out, "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "--model synthetic/respondent: carried over from the study's model: temperature=0.3, max_tokens=5, replicates=3" in err
    assert "not carried over: api_base (where the study's model is served)" in err
    model = _manifest_model(out)
    assert model == {"name": "synthetic/respondent", "params": {"temperature": 0.3, "max_tokens": 5}, "replicates": 3, "rpm": None, "tpm": None}
    df = llmexp.open_run(out).to_pandas()
    assert len(df) == 2 * 2 * 3 and sorted(df["replicate"].unique()) == [0, 1, 2]
    assert {json.loads(p)["temperature"] for p in df["params"]} == {0.3}


def test_explicit_replicates_and_params_win(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["run", _study(tmp_path), "--model", "synthetic/respondent", "-o", out, "--quiet", "--replicates", "1", "--param", "temperature=0"]
    assert cli(argv) == 0
    err = capsys.readouterr().err
    assert "carried over from the study's model: max_tokens=5; set explicitly: temperature=0, replicates=1" in err
    assert _manifest_model(out)["params"] == {"temperature": 0, "max_tokens": 5} and _manifest_model(out)["replicates"] == 1
    assert len(llmexp.open_run(out).to_pandas()) == 4


def test_a_model_the_study_declares_is_run_as_declared():
    study = llmexp.check_text(STUDY.format(models=API.replace("openai/gpt-4o-mini", "synthetic/respondent")))[0]
    result = override_models(study, ["synthetic/respondent"])
    assert result.models == list(study.models) and result.note() is None


def test_settings_the_study_models_disagree_on_are_not_carried():
    models = 'model "openai/a" temperature 0.3 max_tokens 5 replicates 2\nmodel "openai/b" temperature 0.7 max_tokens 5 replicates 2'
    study = llmexp.check_text(STUDY.format(models=models))[0]
    result = override_models(study, ["openai/c"])
    assert result.models[0].params == {"max_tokens": 5} and result.models[0].replicates == 2
    assert result.dropped == {"temperature": "the study's models differ: 0.3, 0.7"}


def test_provider_specific_params_stay_with_their_provider():
    study = llmexp.check_text(STUDY.format(models='model "synthetic/respondent" effect -1.5 temperature 1 replicates 2'))[0]
    result = override_models(study, ["openai/gpt-4o-mini"])
    assert result.models[0].params == {"temperature": 1} and result.dropped == {"effect": "specific to the study's provider"}


def test_secrets_and_rate_limits_are_not_carried():
    study = llmexp.check_text(STUDY.format(models=API))[0]
    spec = study.models[0]
    study = study.with_models([spec.model_copy(update={"params": {**spec.params, "api_key": "sk-x"}, "rpm": 60.0})])
    result = override_models(study, ["openai/gpt-4o"])
    assert result.models[0].params == {"temperature": 0.3, "max_tokens": 5} and result.models[0].rpm is None
    assert result.dropped["api_key"] == "a secret of the study's provider" and "sk-x" not in (result.note() or "")


def test_a_study_without_a_model_line_carries_nothing(tmp_path):
    """The default model is llmexp's choice, not the author's: runs made before carrying over
    (tests/golden/test_old_runs.py) resume unchanged."""
    study = llmexp.check_text(STUDY.format(models=""))[0]
    result = override_models(study, ["synthetic/respondent"])
    assert result.models[0].params == {} and result.models[0].replicates == 1
    assert result.note() == "--model synthetic/respondent: the study declares no model, so nothing is carried over (provider defaults)"


def test_python_run_carries_over_like_the_cli(tmp_path, capsys):
    res = llmexp.run(_study(tmp_path), out=tmp_path / "run", models="synthetic/respondent", progress=False)
    assert "carried over from the study's model: temperature=0.3, max_tokens=5, replicates=3" in capsys.readouterr().err
    assert res.study.models[0].params == {"temperature": 0.3, "max_tokens": 5} and len(res.to_pandas()) == 12
    llmexp.run(_study(tmp_path), out=tmp_path / "run2", models=["synthetic/respondent"], params={"seed": 4}, replicates=1, quiet=True)
    assert capsys.readouterr().err == ""
    assert _manifest_model(tmp_path / "run2")["params"] == {"temperature": 0.3, "max_tokens": 5, "seed": 4}


@pytest.mark.parametrize(
    ("item", "value"), [("temperature=0", 0), ("top_p=0.9", 0.9), ("stop=END", "END"), ("logprobs=true", True), (" seed = 3 ", 3)]
)
def test_param_values_are_typed(item, value):
    name, parsed = parse_param(item)
    assert name == item.split("=")[0].strip() and parsed == value and type(parsed) is type(value)


def test_a_param_without_a_value_is_refused(tmp_path, capsys):
    with pytest.raises(RunError, match="^--param 'temperature': use name=value, e.g. --param temperature=0$"):
        parse_param("temperature")
    assert cli(["run", _study(tmp_path), "--param", "=1", "--dry-run"]) == 2
    assert "--param '=1': use name=value, e.g. --param temperature=0" in capsys.readouterr().err


def test_a_secret_given_with_param_is_not_echoed(tmp_path):
    study = llmexp.check_text(STUDY.format(models=API))[0]
    note = override_models(study, ["openai/gpt-4o"], params={"api_key": "sk-mine-123"}).note() or ""
    assert 'set explicitly: api_key="***"' in note and "sk-mine-123" not in note


def test_explicit_settings_on_the_study_models_are_said_too():
    study = llmexp.check_text(STUDY.format(models=API))[0]
    result = override_models(study, None, replicates=2, params={"temperature": 0})
    assert result.note() == "set on every model: temperature=0, replicates=2"
    assert result.models[0].params["temperature"] == 0 and result.models[0].params["max_tokens"] == 5
    assert override_models(study, None).note() is None
