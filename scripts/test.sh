#!/usr/bin/env bash
# Installs what is missing, then runs the whole test suite. The tests start their own PulseAudio
# (null sink) and tmux servers; extra arguments go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
# Two workers on two cores; tests that share a resource (the PulseAudio sink) are grouped with
# @pytest.mark.xdist_group so that one worker runs them in turn.
exec .venv/bin/python -m pytest -n 2 --dist loadgroup "$@"
