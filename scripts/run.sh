#!/usr/bin/env bash
# Installs what is missing, then opens the dashboard. With no base model configured it opens the
# demo workspace (a tiny random-weight Qwen3-TTS and a synthetic corpus), created on first use.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
exec .venv/bin/milo-tui "$@"
