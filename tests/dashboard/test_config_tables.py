"""config.toml's [ui] and [keys] tables: read, checked, one line when wrong; and the other tables the dashboard reads."""
from __future__ import annotations

import pytest

from milo_tui.config import ConfigError, load_settings


def _load(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(text)
    return load_settings({}, environ={}, path=path)


def test_ui_and_keys_tables(tmp_path):
    s = _load(tmp_path, '[ui]\nascii = true\nrestart_on_crash = 3\nrestart_backoff = 2\n[keys]\nstop = "x"\nkill = "ctrl+k, K"\n')
    assert s.ascii is True and s.restart_on_crash == 3 and s.restart_backoff == 2.0
    assert s.keys == {"stop": "x", "kill": "ctrl+k, K"}
    defaults = load_settings({}, environ={}, path=tmp_path / "none.toml")
    assert defaults.ascii is None and defaults.restart_on_crash == 0 and defaults.keys == {}


@pytest.mark.parametrize("text, words", [
    ("[ui]\nascii = 1\n", "[ui] ascii = 1 must be true or false"),
    ("[ui]\nrestart_on_crash = true\n", "must be a whole number from 0 (off) to 100"),
    ("[ui]\nrestart_on_crash = 500\n", "from 0 (off) to 100"),
    ("[ui]\nrestart_backoff = -1\n", "seconds from 0 to 3600"),
    ("[ui]\ncolour = 1\n", "unknown key(s) in [ui]: colour"),
    ("ui = 3\n", "[ui] must be a table"),
    ("[keys]\nstop = 3\n", "[keys] must map action ids to key names"),
])
def test_bad_values_give_one_line(tmp_path, text, words):
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, text)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_the_audit_table_belongs_to_prepare_and_is_checked_here_too(tmp_path):
    from milo_tui.config import ConfigError, load_settings

    cfg = tmp_path / "config.toml"
    cfg.write_text("[audit]\ncer_max = 0.3\nspeaker_similarity_min = 0.8\n")
    load_settings(path=cfg, environ={})  # a valid [audit] is not an unknown table to the dashboard
    cfg.write_text("[audit]\ncer_max = \"low\"\n")
    with pytest.raises(ConfigError, match=r"\[audit\] cer_max = 'low' must be a number"):
        load_settings(path=cfg, environ={})


def test_the_best_table_sets_the_rule_and_a_mistake_is_one_line(tmp_path):
    from contract.scores import BestRule

    assert _load(tmp_path, "").best == BestRule("similarity", 0.05, 0)
    assert _load(tmp_path, '[best]\nmetric = "val_loss"\nmax_runaway = 1\n').best == BestRule("val_loss", 0.05, 1)
    for text, said in (('[best]\nmetric = "loudness"\n', "metric = 'loudness' must be one of similarity"),
                       ("[best]\nwer_margin = -1\n", "wer_margin = -1 must be a number of 0 or more"),
                       ("[best]\nmax_runaway = 1.5\n", "max_runaway = 1.5 must be a whole number"),
                       ("[best]\nmetrc = 1\n", "unknown key(s) in [best]: metrc")):
        with pytest.raises(ConfigError) as err:
            _load(tmp_path, text)
        assert said in str(err.value) and "\n" not in str(err.value)


def test_the_scoring_table_says_where_the_scorer_generates_and_a_mistake_is_one_line(tmp_path):
    assert _load(tmp_path, "").score_device == "cpu"  # the default: never beside a training run on its GPU
    assert _load(tmp_path, '[scoring]\ndevice = "cuda"\n').score_device == "cuda"
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, '[scoring]\ndevice = "gpu"\n')
    assert "[scoring] device = 'gpu' must be one of cpu, cuda, auto" in str(err.value) and "\n" not in str(err.value)


def test_the_retention_table_carries_into_runs_started_from_the_dashboard(tmp_path):
    from contract.retention import Policy
    from milo_tui.supervisor import RunRequest, trainer_argv

    s = _load(tmp_path, '[retention]\nkeep_best = 2\nkeep_last = 1\nbudget = "1G"\nafter_each_save = true\n'
                        'stop_unimproved = 3\n')
    assert s.retention == Policy(2, 1, 1024 ** 3, True, 3)
    req = RunRequest(run_dir=tmp_path / "r", base_model=tmp_path / "b", data=tmp_path / "d.jsonl",
                     retain=tuple(s.retention.trainer_flags()))
    argv = trainer_argv("python", req)
    assert argv[argv.index("--keep-best"):] == ["--keep-best", "2", "--keep-last", "1", "--disk-budget",
                                                 str(1024 ** 3), "--stop-unimproved", "3"]
    assert "--keep-best" not in trainer_argv("python", RunRequest(run_dir=tmp_path / "r", base_model=tmp_path / "b",
                                                                  data=tmp_path / "d.jsonl"))
    for text, said in (('[retention]\nbudget = "lots"\n', "budget: 'lots' is not a size"),
                       ("[retention]\nafter_each_save = 1\n", "after_each_save = 1 must be true or false"),
                       ("[retention]\nkeep = 1\n", "unknown key(s) in [retention]: keep")):
        with pytest.raises(ConfigError) as err:
            _load(tmp_path, text)
        assert said in str(err.value)


def test_the_scoring_table_belongs_to_the_scorers_and_is_checked_here_too(tmp_path):
    _load(tmp_path, "[scoring]\nmax_scorers = 2\n")  # a valid [scoring] is not an unknown table to the dashboard
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, "[scoring]\nmax_scorers = 0\n")
    assert "[scoring] max_scorers = 0 must be a whole number of 1 or more" in str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, "[scoring]\nmax_scorer = 2\n")  # a typo is said, as in every other table
    assert "unknown key(s) in [scoring]: max_scorer; valid keys are device, max_scorers" in str(err.value)


def test_the_serve_table_belongs_to_milo_serve_and_gives_the_dashboard_its_port(tmp_path):
    """A config with milo-serve's [serve] table starts the dashboard (it was refused as an unknown key), whose S
    serves on its host and port; a mistake in it is one line here too."""
    s = _load(tmp_path, '[serve]\nhost = "127.0.0.1"\nport = 9100\nqueue = 4\n')
    assert (s.serve_host, s.serve_port) == ("127.0.0.1", 9100)
    assert load_settings({}, environ={}, path=tmp_path / "none.toml").serve_port == 8767
    with pytest.raises(ConfigError, match=r"port = 70000 must be a port number from 1 to 65535") as error:
        _load(tmp_path, "[serve]\nport = 70000\n")
    assert "\n" not in str(error.value)
