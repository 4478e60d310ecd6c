"""docs/keys.md names every binding id (the ids a [keys] table may remap), and nothing else."""
from __future__ import annotations

import re

from milo_tui.app import all_binding_ids
from tests.conftest import ROOT


def test_keys_md_lists_every_action_id():
    text = (ROOT / "docs" / "keys.md").read_text()
    documented = set()
    for row in re.findall(r"^\| [^|]* \| ([^|]*) \|", text, re.M):
        documented |= set(re.findall(r"`([a-z_][a-z_.0-9]*)`", row))
    assert documented == all_binding_ids()


def test_every_binding_has_an_id_a_description_and_a_tooltip():
    from milo_tui.app import binding_classes
    from milo_tui.audition.picker import CheckpointPicker

    classes = (*binding_classes(), CheckpointPicker)
    bindings = [(cls.__name__, b) for cls in classes for b in cls.BINDINGS]
    assert len(bindings) > 40
    missing = [(name, b.key) for name, b in bindings if not (b.id and b.description and b.tooltip)]
    assert not missing, missing


def _code_files():
    for folder in ("contract", "milo_tui", "training", "inference", "scripts", "bench"):
        yield from (p for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".sh"))


def test_every_milo_variable_the_code_reads_is_in_configuration_md():
    read = set()
    for path in _code_files():
        read |= set(re.findall(r"\bMILO_[A-Z_]+[A-Z]\b", path.read_text()))
    assert {"MILO_TORCH_INDEX", "MILO_AUDIO_OUTPUT", "MILO_BASE_MODEL"} <= read  # the scan sees all three kinds
    documented = set(re.findall(r"\bMILO_[A-Z_]+[A-Z]\b", (ROOT / "docs" / "configuration.md").read_text()))
    assert read - documented == set(), sorted(read - documented)


def _flags(parser) -> set[str]:
    import argparse

    flags = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                flags |= _flags(sub)
        flags |= {o for o in action.option_strings if o.startswith("--") and o != "--help"}
    return flags


def test_every_cli_flag_is_in_the_readme_or_the_doc_it_names():
    import argparse
    from unittest import mock

    from inference.say import build_parser as say_parser
    from inference.serve.cli import build_parser as serve_parser
    from milo_tui.cli import build_parser as tui_parser
    from milo_tui.recording.app import build_parser as record_parser
    from training.cli import build_parser as train_parser

    import contract.listen as listen

    captured = {}
    real_parse = argparse.ArgumentParser.parse_args

    def capture(self, *a, **k):
        captured["listen"] = self
        raise SystemExit(0)

    with mock.patch.object(argparse.ArgumentParser, "parse_args", capture):
        try:
            listen.main([])
        except SystemExit:
            pass
    assert argparse.ArgumentParser.parse_args is real_parse
    readme = (ROOT / "README.md").read_text()
    docs = {name: (ROOT / "docs" / f"{name}.md").read_text() for name in ("configuration", "training", "audition", "serving",
                                                                            "recording")}
    commands = {"milo-tui": (tui_parser(), "configuration"), "milo-train": (train_parser(), "training"),
                "milo-say": (say_parser(), "audition"), "milo-listen": (captured["listen"], "audition"),
                "milo-serve": (serve_parser(), "serving"), "milo-tui record": (record_parser(), "recording")}
    missing = []
    for command, (parser, doc) in commands.items():
        flags = _flags(parser)
        assert flags, command
        assert f"docs/{doc}.md" in readme  # the README names the doc
        named = [t for t in (readme, docs[doc])]
        missing += [(command, f) for f in sorted(flags)
                    if not any(re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", t) for t in named)]
    assert not missing, missing


def test_every_audit_threshold_is_documented_with_its_default():
    from contract.audit import THRESHOLDS

    config = (ROOT / "docs" / "configuration.md").read_text()
    audit = (ROOT / "docs" / "corpus-audit.md").read_text()
    for key, t in THRESHOLDS.items():
        assert f"| `audit.{key}` | {t.default:g} |" in config, key
        assert f"`{key}`" in audit and t.check in audit, key


def test_the_readme_lists_every_doc():
    readme = (ROOT / "README.md").read_text()
    listed = set(re.findall(r"^- docs/([\w-]+\.md): \S", readme, re.M))
    assert listed == {p.name for p in (ROOT / "docs").glob("*.md")}
