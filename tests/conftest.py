"""The fixtures every test folder reaches: `gateway` (sidegate serving a policy, tests/support/gateway.py),
`fake_upstream` (one fake provider, tests/support/fakes) and `fakes` (one fake of each kind,
tests/support/three_fakes.py).

The suite has three layers: `support/` (fakes, SDK clients, services, fixtures data), `unit/<package>/`
(one package's modules in-process, no socket, no subprocess) and `e2e/` (the app, a server process,
a real SDK against the app, Redis, PostgreSQL, Prometheus)."""

import pytest

pytest.register_assert_rewrite("tests.support")  # the support modules' asserts explain themselves too

from tests.support.fakes import fake_upstream  # noqa: E402, F401  (fixture)
from tests.support.gateway import gateway  # noqa: E402, F401  (fixture)
from tests.support.three_fakes import fakes  # noqa: E402, F401  (fixture: one fake upstream of each kind)
