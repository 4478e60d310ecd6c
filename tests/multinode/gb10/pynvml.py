"""The NVML of the other host in the dashboard's tests: a DGX Spark's GB10 (tests/dashboard/fakes.py, which
raises the real library's errors), in place of `pynvml` for every python that host's sessions start (its
sshd puts this folder first on PYTHONPATH). This machine has no NVIDIA driver: the one boundary faked."""
import importlib
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
del sys.modules[__name__]
importlib.import_module("pynvml")  # the real library, whose error classes and structures the fake uses

from tests.dashboard.fakes import FakeNvml  # noqa: E402

sys.modules[__name__] = FakeNvml("gb10")
