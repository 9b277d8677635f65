"""The inference log on a real PostgreSQL through the app: a streamed Anthropic answer lands in the
`inference_log` table as the message the SDK assembled (skips without a server, fails under CI=true)."""

from __future__ import annotations

import anthropic
import orjson
from tests.e2e.test_inference_log_e2e import claude, logged, start

pytest_plugins = ["tests.support.pg_service"]  # pg_url: a PostgreSQL schema of the test's own


async def test_postgres_store_holds_the_aggregated_stream(gateway, fake_upstream, tmp_path, pg_url):
    gw, store = await start(gateway, fake_upstream, tmp_path, store=pg_url)
    client = claude(gw)
    async with client, client.messages.stream(model="claude", max_tokens=64,
                                              messages=[{"role": "user", "content": "hi"}]) as stream:
        final = await stream.get_final_message()
    [row] = await logged(gw, store)
    folded = anthropic.types.Message.model_validate(orjson.loads(row["response_payload"]))
    assert folded.model_dump() == final.model_dump() and folded.content[0].text == "Hello from the fake"  # type: ignore[union-attr]
    assert row["request_tags"] == {} and row["logging_error_codes"] == [] and row["streaming"] is True
