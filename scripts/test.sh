#!/usr/bin/env bash
# Installs what is missing, then runs the whole test suite. The tests start their own PulseAudio
# (null sink) and tmux servers; extra arguments go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
exec .venv/bin/python -m pytest "$@"
