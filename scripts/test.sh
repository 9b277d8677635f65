#!/usr/bin/env bash
# The whole test suite in one command (README): the system tools some tests drive, then the Python
# test dependencies, then pytest. Extra arguments go to pytest.
#   prometheus (Debian package): the metrics test scrapes sidegate with a real Prometheus server.
#   System packages are installed only when asked: SIDEGATE_TEST_INSTALL=1 (.ci/run sets it);
#   without it a test whose tool is missing is skipped with a message (it fails under CI=true).
# Tests that need Redis (127.0.0.1:6379) or PostgreSQL (127.0.0.1:5432) expect those services to be
# running; with CI=true a missing service fails its tests, otherwise they are skipped with a message.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${SIDEGATE_TEST_INSTALL:-}" = 1 ] && ! command -v prometheus >/dev/null && command -v apt-get >/dev/null; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  echo "installing prometheus (apt-get) for the metrics scrape test"
  $sudo apt-get update -qq
  # RUNLEVEL=1: the package must not start its own server; the test starts one on a free port.
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
    || echo "could not install prometheus: the scrape test will be skipped (or fail with CI=true)"
fi

python -m pip install --quiet -e '.[test]'
python -m pytest "$@"
