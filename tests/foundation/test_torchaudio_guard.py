"""inference/qwen.py: qwen_tts imports whether or not torchaudio's native library loads."""
from __future__ import annotations

import textwrap

from tests.conftest import python_env


def _run(code: str, **env):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=180, env=python_env(**env))


def test_broken_torchaudio_gets_a_placeholder_and_qwen_tts_imports():
    proc = _run("""
        import sys
        try:
            import torchaudio
            print("REAL")      # this machine has a matching torchaudio: nothing to guard
        except OSError:
            print("BROKEN")
        for k in [k for k in sys.modules if k.startswith("torchaudio")]:
            del sys.modules[k]
        import inference.qwen as q
        qwen_tts = q.import_qwen_tts()
        print("QWEN", qwen_tts.Qwen3TTSModel.__name__)
        import torchaudio
        print("PLACEHOLDER", getattr(torchaudio, "__milo_placeholder__", False), q.torchaudio_problem is not None)
        try:
            torchaudio.compliance.kaldi.fbank
        except q.TorchaudioUnavailable as e:
            print("RAISES", str(e))
    """)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "QWEN Qwen3TTSModel" in out
    if "BROKEN" in out:
        assert "PLACEHOLDER True True" in out
        assert "RAISES torchaudio is unusable here (OSError" in out
        assert "25 Hz tokenizer" in out
    else:
        assert "PLACEHOLDER False False" in out


def test_without_the_guard_qwen_tts_does_not_import_here():
    """Why the guard exists: on this machine's torch, plain `import qwen_tts` fails."""
    proc = _run("""
        try:
            import torchaudio
            print("REAL")
        except OSError:
            try:
                import qwen_tts
                print("IMPORTED")
            except OSError as e:
                print("FAILS", type(e).__name__)
    """)
    assert proc.returncode == 0, proc.stderr
    assert "REAL" in proc.stdout or "FAILS OSError" in proc.stdout


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
