#!/usr/bin/env bash
# Creates or reuses the project's virtual environment (.venv) and installs everything milo-tui needs:
# the Debian packages, torch, and the project with its engine and test extras. Safe to run again: each
# step is skipped when it is already done. Sourced by scripts/run.sh and scripts/test.sh.
#
# An unchanged setup costs milliseconds: .venv/.milo-ready records what was checked (pyproject.toml's
# hash and the Debian package list); while it matches, the dpkg database is no newer than it, and the
# venv's python, milo-tui and torch are still on disk, nothing else is looked at. torch is found on disk,
# never imported (an import costs 2-7 s).
#
#   MILO_PYTHON       interpreter for the venv (default: python3)
#   MILO_TORCH        torch requirement to install when the venv has none (default: torch==2.13.0: the
#                     CPU build where pip finds that file locally, as on CI; from PyPI on x86_64 the
#                     CUDA build; on a DGX Spark see README.md)
#   MILO_TORCH_INDEX  the index torch is installed from instead of PyPI (pip --index-url, so it must
#                     hold torch's dependencies too, as https://download.pytorch.org/whl/cu130 does)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

# festival with its HTS voice (SLT) and its diphone voice (kal, another speaker), and espeak-ng: speech
# nobody here recorded, for the scoring and corpus-audit tests. openssh-server and rsync: the multi-host tests
# start their own sshd as the second host (nothing uses a system sshd), and --sync copies data with rsync.
debs=(libportaudio2 sox pulseaudio pulseaudio-utils alsa-utils libasound2-plugins tmux festival festvox-us-slt-hts
      festvox-kallpc16k espeak-ng openssh-server rsync)
ready=.venv/.milo-ready
ready_key="$(sha256sum pyproject.toml | cut -d' ' -f1) ${debs[*]}"
milo_ready() {
  [ -x .venv/bin/python ] && [ -x .venv/bin/milo-tui ] && [ "$(cat "$ready" 2>/dev/null)" = "$ready_key" ] &&
    ! [ /var/lib/dpkg/status -nt "$ready" ] && compgen -G ".venv/lib/python3*/site-packages/torch/__init__.py" >/dev/null
}
milo_setup() {
  # One dpkg-query for all the packages (one per package cost a quarter of a second).
  declare -A installed=()
  while read -r pkg status; do
    if [ "$status" = "install ok installed" ]; then installed[$pkg]=1; fi
  done < <(dpkg-query -W -f='${Package} ${Status}\n' "${debs[@]}" 2>/dev/null || true)
  missing=()
  for d in "${debs[@]}"; do
    [ -n "${installed[$d]:-}" ] || missing+=("$d")
  done
  if ((${#missing[@]})); then
    echo "milo: installing Debian packages: ${missing[*]}" >&2
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi

  py=${MILO_PYTHON:-python3}
  if [ ! -x .venv/bin/python ] && ! $py -c "import ensurepip, venv" 2>/dev/null; then
    # Debian/Ubuntu ship venv's pip bootstrap separately (DGX OS included).
    echo "milo: installing python3-venv" >&2
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
  fi
  if [ ! -x .venv/bin/python ]; then
    echo "milo: creating .venv with $($py --version)" >&2
    $py -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
  fi

  if ! .venv/bin/python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is None)"; then
    read -ra spec <<< "${MILO_TORCH:-torch==2.13.0}"   # one or more requirements, e.g. "torch torchaudio"
    echo "milo: installing ${spec[*]}" >&2
    if [ -n "${MILO_TORCH_INDEX:-}" ]; then
      .venv/bin/python -m pip install -q "${spec[@]}" --index-url "$MILO_TORCH_INDEX"
    else
      .venv/bin/python -m pip install -q "${spec[@]}"
    fi
  fi

  # Reinstall the project only when its declared dependencies change.
  stamp=.venv/.milo-installed
  want=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "milo: installing milo-tui and its dependencies into .venv" >&2
    .venv/bin/python -m pip install -q -e ".[engine,test]"
    # resemblyzer asks for webrtcvad, whose module imports pkg_resources (gone from the setuptools torch
    # needs); webrtcvad-wheels ships the same module without it. Both write webrtcvad.py, so make the
    # wheels' copy the one on disk whatever order pip installed them in.
    .venv/bin/python -m pip install -q --no-deps --force-reinstall webrtcvad-wheels
    echo "$want" > "$stamp"
  fi
  echo "$ready_key" > "$ready"
}
milo_ready || milo_setup
