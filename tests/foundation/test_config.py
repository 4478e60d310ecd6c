"""Configuration precedence: defaults < TOML file < environment < flags; bad values get one line."""
from __future__ import annotations

from pathlib import Path

import pytest

from milo_tui.config import ConfigError, load_settings


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(text)
    return p


def test_precedence_file_then_env_then_flags(tmp_path):
    cfg = _write(tmp_path, 'base_model = "/file/base"\ncheckpoints = "/file/ckpt"\ndata = "/file/data"\ndevice = "cpu"\n')
    env = {"MILO_CHECKPOINTS": "/env/ckpt", "MILO_DEVICE": "cuda:1"}
    s = load_settings({"device": "cuda", "data": None}, environ=env, path=cfg)
    assert s.base_model == Path("/file/base") and s.source("base_model").startswith("file ")
    assert s.checkpoints == Path("/env/ckpt") and s.source("checkpoints") == "env MILO_CHECKPOINTS"
    assert s.data == Path("/file/data")
    assert s.device == "cuda" and s.source("device") == "flag --device"


def test_defaults_without_file_or_env(tmp_path):
    s = load_settings({}, environ={}, path=tmp_path / "missing.toml")
    assert s.base_model is None and s.device == "auto" and s.source("checkpoints") == "default"


def test_home_is_expanded(tmp_path):
    s = load_settings({}, environ={"MILO_DATA": "~/corpus"}, path=tmp_path / "none.toml")
    assert s.data == Path.home() / "corpus"


@pytest.mark.parametrize("text, fragment", [
    ('base_model = "/x"\nbase_model = "/y"\n', "fix the TOML syntax"),
    ('device = "tpu"\n', "is not one of auto, cpu, cuda, cuda:N"),
    ('checkpoint = "/typo"\n', "unknown key(s) checkpoint"),
    ("base_model = 3\n", "must be a non-empty path string"),
])
def test_bad_file_gives_one_line(tmp_path, text, fragment):
    with pytest.raises(ConfigError) as err:
        load_settings({}, environ={}, path=_write(tmp_path, text))
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_bad_env_value_names_the_variable(tmp_path):
    with pytest.raises(ConfigError, match=r"\$MILO_DEVICE"):
        load_settings({}, environ={"MILO_DEVICE": "gpu"}, path=tmp_path / "none.toml")


def test_a_table_schema_checks_each_key_and_says_a_mistake_in_one_line():
    from contract.configfile import number, one_of, parsed, read_table, true_or_false, whole
    from contract.units import parse_size

    keys = {"count": whole(2, lo=1), "share": number(0.5, lo=0, hi=1), "on": true_or_false(False),
            "kind": one_of("a", ("a", "b")), "size": parsed(None, parse_size),
            "tries": whole(0, lo=0, hi=100, expected="a whole number from 0 (off) to 100")}
    assert read_table({}, "t", keys) == {"count": 2, "share": 0.5, "on": False, "kind": "a", "size": None, "tries": 0}
    assert read_table({"t": {"share": 1, "size": "1K"}}, "t", keys, given=True) == {"share": 1.0, "size": 1024}
    # a key outside `only` is another reader's: neither checked nor unknown
    assert read_table({"t": {"count": 0, "other": 1}}, "t", keys, only=("kind",)) == {"kind": "a"}
    for table, said in (
            ({"count": 0}, "f.toml: [t] count = 0 must be a whole number of 1 or more"),
            ({"count": True}, "f.toml: [t] count = True must be a whole number of 1 or more"),
            ({"share": 2}, "f.toml: [t] share = 2 must be a number from 0 to 1"),
            ({"share": "x"}, "f.toml: [t] share = 'x' must be a number from 0 to 1"),
            ({"on": 1}, "f.toml: [t] on = 1 must be true or false"),
            ({"kind": "c"}, "f.toml: [t] kind = 'c' must be one of a, b"),
            ({"size": "lots"}, "f.toml: [t] size: 'lots' is not a size: give bytes, or a number with K, M, G or T (e.g. 50G)"),
            ({"tries": 101}, "f.toml: [t] tries = 101 must be a whole number from 0 (off) to 100"),
            ({"cuont": 1, "x": 2}, "f.toml: unknown key(s) in [t]: cuont, x; valid keys are count, share, on, kind, size, tries"),
            (3, "f.toml: [t] must be a table")):
        with pytest.raises(ConfigError) as err:
            read_table({"t": table}, "t", keys, "f.toml")
        assert str(err.value) == said
