"""inference/qwen.py: qwen_tts imports whether or not torchaudio's native library loads."""
from __future__ import annotations

import textwrap

from tests.conftest import python_env


def _run(code: str, **env):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=180, env=python_env(**env))


BROKEN_INIT = ('raise OSError("Could not load this library: /venv/torchaudio/lib/_torchaudio.abi3.so")\n')


def _broken_torchaudio(tmp_path) -> str:
    """A torchaudio that fails to import as PyPI's 2.11 does beside torch 2.13, whatever this host has:
    first on the path. Returns the PYTHONPATH to use."""
    pkg = tmp_path / "torchaudio"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(BROKEN_INIT)
    return f"{tmp_path}:{python_env()['PYTHONPATH']}"


def test_broken_torchaudio_gets_a_placeholder_and_qwen_tts_imports(tmp_path):
    proc = _run("""
        import inference.qwen as q
        qwen_tts = q.import_qwen_tts()
        print("QWEN", qwen_tts.Qwen3TTSModel.__name__)
        import torchaudio
        print("PLACEHOLDER", getattr(torchaudio, "__milo_placeholder__", False), q.torchaudio_problem)
        try:
            torchaudio.compliance.kaldi.fbank
        except q.TorchaudioUnavailable as e:
            print("RAISES", str(e))
    """, PYTHONPATH=_broken_torchaudio(tmp_path))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "QWEN Qwen3TTSModel" in out
    assert "PLACEHOLDER True OSError: Could not load this library: /venv/torchaudio/lib/_torchaudio.abi3.so" in out
    assert "RAISES torchaudio is unusable here (OSError" in out and "25 Hz tokenizer" in out


def test_without_the_guard_qwen_tts_does_not_import_beside_a_broken_torchaudio(tmp_path):
    """Why the guard exists: plain `import qwen_tts` fails when torchaudio cannot load."""
    proc = _run("""
        try:
            import qwen_tts
            print("IMPORTED")
        except OSError as e:
            print("FAILS", type(e).__name__, e)
    """, PYTHONPATH=_broken_torchaudio(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "FAILS OSError Could not load this library" in proc.stdout and "IMPORTED" not in proc.stdout, proc.stdout


def test_a_working_torchaudio_is_left_alone(tmp_path):
    """Where torchaudio loads (a Spark with matching CUDA builds), the guard changes nothing."""
    pkg = tmp_path / "torchaudio"
    (pkg / "compliance").mkdir(parents=True)
    (pkg / "__init__.py").write_text("WORKING = True\n")
    (pkg / "compliance" / "__init__.py").write_text("")
    (pkg / "compliance" / "kaldi.py").write_text("def fbank(*a, **k):\n    return 'fbank'\n")
    proc = _run("""
        import inference.qwen as q
        assert q.guard_torchaudio() is None
        import torchaudio, torchaudio.compliance.kaldi as kaldi
        print(torchaudio.WORKING, kaldi.fbank(), q.torchaudio_problem)
    """, PYTHONPATH=f"{tmp_path}:{python_env()['PYTHONPATH']}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True fbank None"


def test_qwen_import_notice_stays_off_stdout():
    proc = _run("""
        import inference.qwen as q
        q.import_qwen_tts()
        print("CLEAN")
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "CLEAN"
