"""The stream reader the attempt opens a destination's stream with: before the caller's first byte it
sees (parses, checks) only the events up to the first one the caller gets, however many the first
chunk holds; the rest of that chunk is seen after, through `rest`."""

from __future__ import annotations

from collections.abc import AsyncIterator

from sidegate import apis
from sidegate.formats.registry import FORMATS
from sidegate.formats.stream import StreamReader


def chat_event(text: str) -> bytes:
    return b'data: {"choices": [{"index": 0, "delta": {"content": "%s"}}]}\n\n' % text.encode()


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


class CountingObserver:
    """The chat observer, counting the events it is shown."""

    def __init__(self) -> None:
        self.inner = FORMATS[apis.OPENAI_CHAT].observer(False)
        self.seen = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def on_event(self, event: str | None, data: bytes) -> bool:
        self.seen += 1
        return self.inner.on_event(event, data)


async def test_start_sees_only_the_first_event_of_a_chunk_and_rest_sees_the_others() -> None:
    whole = b"".join(chat_event(f"t{i}") for i in range(30)) + b"data: [DONE]\n\n"
    observer = CountingObserver()
    reader = StreamReader(chunks(whole).__aiter__(), observer)  # type: ignore[arg-type]
    await reader.start()
    assert observer.seen == 1 and len(reader.first) == 1 and reader.problem is None
    assert reader.first[0][1] == {"choices": [{"index": 0, "delta": {"content": "t0"}}]}
    rest = reader.rest()
    assert observer.seen == 31 and [obj["choices"][0]["delta"]["content"] for _ev, obj in rest if obj] == \
        [f"t{i}" for i in range(1, 30)]
    assert reader.rest() == []  # once
    assert reader.end() == [] and reader.problem is None  # [DONE] was seen: the stream ended well


async def test_a_problem_after_the_first_event_of_the_chunk_is_found_by_rest() -> None:
    reader = StreamReader(chunks(chat_event("a") + b"<html>oops</html>\n\n" + chat_event("b")).__aiter__(),
                          FORMATS[apis.OPENAI_CHAT].observer(False))
    await reader.start()
    assert reader.problem is None and len(reader.first) == 1  # the caller may get its first byte
    assert reader.rest() == [] and reader.done
    assert reader.problem == "a line that is not server-sent events"


async def test_a_problem_before_the_first_event_is_found_by_start() -> None:
    reader = StreamReader(chunks(b"data: [1, 2]\n\n" + chat_event("a")).__aiter__(),
                          FORMATS[apis.OPENAI_CHAT].observer(False))
    await reader.start()
    assert reader.first == [] and reader.done and reader.problem is not None
    assert reader.rest() == []


async def test_start_reads_on_until_an_event_the_caller_gets() -> None:
    observer = FORMATS[apis.OPENAI_CHAT].observer(False)
    event = chat_event("x")
    reader = StreamReader(chunks(b"", event[:10], event[10:]).__aiter__(), observer)  # an event split in two
    await reader.start()
    assert [obj for _ev, obj in reader.first] == [{"choices": [{"index": 0, "delta": {"content": "x"}}]}]
    assert not reader.done
