#!/usr/bin/env bash
# The benchmark in one command: installs what it needs, then runs bench/run.py with the same options.
#   nginx and wrk         from Debian (apt-get), if missing
#   bench/.venv           sidegate (editable, so it measures the working tree) and uvloop
#   bench/.venv-litellm   LiteLLM proxy, the reference peer, in its own venv
#   bash bench/run.sh            full run (~6 minutes)      bash bench/run.sh --quick   (under a minute)
#   bash bench/run.sh --soak 600 (sidegate's memory under 10 minutes of mixed traffic)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

quiet() {  # run a command, show its output only if it fails
  local log
  log=$(mktemp)
  if ! "$@" >"$log" 2>&1; then cat "$log"; rm -f "$log"; return 1; fi
  rm -f "$log"
}

missing=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v wrk >/dev/null || missing+=(wrk)
command -v taskset >/dev/null || missing+=(util-linux)
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  echo "installing ${missing[*]} (apt-get)"
  $sudo apt-get update -qq
  # RUNLEVEL=1: the nginx package must not start its own server on port 80; the benchmark runs its own.
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
export PATH="$PATH:/usr/sbin"

# (again when pyproject.toml changed: a new dependency must reach the benchmark's venv)
stamp=$(sha256sum pyproject.toml | cut -d' ' -f1)
if ! bench/.venv/bin/python -c 'import sidegate, uvloop, sys; sys.exit(not sidegate.__file__.startswith(sys.argv[1]))' \
    "$PWD/src/" 2>/dev/null || [ "$(cat bench/.venv/.pyproject-sha 2>/dev/null)" != "$stamp" ]; then
  echo "installing sidegate into bench/.venv"
  [ -x bench/.venv/bin/python ] || "$PY" -m venv bench/.venv
  quiet bench/.venv/bin/pip install --upgrade pip
  quiet bench/.venv/bin/pip install -e . uvloop
  echo "$stamp" > bench/.venv/.pyproject-sha
fi

needs_litellm=1
for arg in "$@"; do
  case "$arg" in --soak|--soak=*) needs_litellm=0 ;; esac
done
prev=""
for arg in "$@"; do
  if [ "$prev" = "--targets" ] || [[ "$arg" == --targets=* ]]; then
    [[ "${arg#--targets=}" == *litellm* ]] || needs_litellm=0
  fi
  prev="$arg"
done
if ((needs_litellm)) && [ ! -x bench/.venv-litellm/bin/litellm ]; then
  echo "installing LiteLLM proxy into bench/.venv-litellm"
  "$PY" -m venv bench/.venv-litellm
  quiet bench/.venv-litellm/bin/pip install --upgrade pip
  quiet bench/.venv-litellm/bin/pip install 'litellm[proxy]' uvloop
fi

exec bench/.venv/bin/python bench/run.py "$@"
