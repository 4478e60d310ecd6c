"""A run's settings from its flags and run.json, settled without torch and without touching a file."""
from __future__ import annotations

import subprocess
import sys
import types
from dataclasses import asdict
from pathlib import Path

import pytest

from contract.defaults import RUN_DEFAULTS
from training.failures import UsageError
from training.hyper import CHANGEABLE_ON_RESUME, resolve


def _args(**given) -> types.SimpleNamespace:
    flags = {k: None for k in RUN_DEFAULTS}
    flags.update(resume=False, base=None, data=None, speaker=None, ref=None)
    return types.SimpleNamespace(**{**flags, **given})


def _run_json(**hyper) -> dict:
    return dict(base_model="/models/base", data="/data/train.jsonl", speaker="anna", ref_audio=None,
                hyper={**RUN_DEFAULTS, **hyper})


def test_a_new_run_takes_the_defaults_under_what_was_typed():
    settings = resolve(_args(base="b", data="d", epochs=3), Path("/runs/Anna"), None)
    assert settings.speaker == "anna" and settings.run_json is None
    assert asdict(settings.hyper) == {**RUN_DEFAULTS, "epochs": 3, "dtype": "float32"}


def test_a_resume_keeps_the_run_and_changes_only_what_it_may():
    settings = resolve(_args(resume=True, epochs=20, stop_unimproved=2), Path("/runs/x"), _run_json(lr=1e-4))
    assert settings.base == Path("/models/base") and settings.speaker == "anna"
    assert (settings.hyper.epochs, settings.hyper.stop_unimproved, settings.hyper.lr) == (20, 2, 1e-4)
    with pytest.raises(UsageError, match="--lr cannot change .* only --epochs, --patience, --no-score"):
        resolve(_args(resume=True, lr=1e-3), Path("/runs/x"), _run_json(lr=1e-4))
    assert "lr" not in CHANGEABLE_ON_RESUME


def test_a_run_json_without_resume_and_a_bad_value_are_refused():
    with pytest.raises(UsageError, match="already holds a run: add --resume"):
        resolve(_args(base="b", data="d"), Path("/runs/x"), _run_json())
    with pytest.raises(UsageError, match="--batch-size 0: batch size must be from 1 to 1024"):
        resolve(_args(base="b", data="d", batch_size=0), Path("/runs/x"), None)


def test_the_trainer_and_the_form_refuse_the_same_values_with_the_same_line():
    """RUN_LIMITS beside the defaults: just outside each range both refuse, with the contract's line; at each
    end both accept."""
    from contract.defaults import RUN_LIMITS, parse_run_value
    from training.hyper import _FLAGS

    for key, limit in RUN_LIMITS.items():
        if key == "restart_limit":  # the keeper's, not the trainer's
            continue
        step = 1 if limit.kind is int else limit.low / 10
        for value in (limit.low - step, limit.high + (step if limit.kind is int else limit.high)):
            value = limit.kind(value)
            _form_value, form_problem = parse_run_value(key, str(value))
            assert form_problem, (key, value)
            with pytest.raises(UsageError) as refused:
                resolve(_args(base="b", data="d", **{key: value}), Path("/runs/x"), None)
            flag = _FLAGS.get(key, "--" + key.replace("_", "-"))
            assert str(refused.value) == f"{flag} {value}: {form_problem}", (key, value)
        for value in (limit.low, limit.high):
            assert parse_run_value(key, str(limit.kind(value)))[1] is None
            resolve(_args(base="b", data="d", **{key: limit.kind(value)}), Path("/runs/x"), None)


def test_settling_the_settings_imports_no_torch():
    code = ("import sys, types; from pathlib import Path; from training.hyper import resolve; "
            "from contract.defaults import RUN_DEFAULTS as D; "
            "a = types.SimpleNamespace(**{k: None for k in D}, resume=False, base='b', data='d', speaker=None, ref=None); "
            "resolve(a, Path('/runs/x'), None); print('torch' in sys.modules)")
    from tests.conftest import python_env

    out = subprocess.run([sys.executable, "-c", code], env=python_env(), capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
