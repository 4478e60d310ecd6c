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
