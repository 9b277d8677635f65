"""The real PostgreSQL the store tests use (127.0.0.1:5432, database `test`, or SIDEGATE_TEST_POSTGRES).

`pg_url` gives each test a schema of its own (a store URL with `?search_path=`), dropped afterwards.
Without a reachable server the tests skip, except under CI=true where they fail.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

POSTGRES = os.environ.get("SIDEGATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


async def admin_connection() -> Any:
    try:
        return await asyncpg.connect(POSTGRES, timeout=5)
    except Exception as exc:
        message = f"PostgreSQL is not reachable at {POSTGRES} ({exc!r}); start one or set SIDEGATE_TEST_POSTGRES"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def with_schema(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}search_path={schema}"


@pytest_asyncio.fixture
async def pg_admin() -> AsyncIterator[Any]:
    conn = await admin_connection()
    yield conn
    await conn.close()


@pytest_asyncio.fixture
async def pg_url(pg_admin: Any) -> AsyncIterator[str]:
    """A store URL whose tables land in a fresh schema."""
    schema = f"sidegate_test_{secrets.token_hex(6)}"
    await pg_admin.execute(f"CREATE SCHEMA {schema}")
    yield with_schema(POSTGRES, schema)
    await pg_admin.execute(f"DROP SCHEMA {schema} CASCADE")
