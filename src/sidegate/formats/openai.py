"""OpenAI wire formats: Chat Completions, Responses, Embeddings, model list: usage, stream
observers and stream folds.

Usage: `prompt_tokens_details` / `input_tokens_details` carry cache reads (`cached_tokens`) and
writes (`cache_write_tokens`, as OpenAI-compatible servers in front of caching providers report
them), `completion_tokens_details` / `output_tokens_details` the reasoning tokens.

Folds: a Chat Completions stream's deltas merge per choice as the openai SDK's stream accumulator
does (text fields concatenated, tool-call fragments merged by their `index` so arguments join),
into a `chat.completion` with each choice's message, logprobs and finish reason, and the usage
chunk's usage. A Responses stream folds to the `response` object of its terminal event
(`response.completed`, `.incomplete` or `.failed`); a stream cut short gives the last snapshot with
the output items that were finished, and the text or arguments of the ones that were not.
"""

from __future__ import annotations

from typing import Any

from sidegate import apis
from sidegate.formats.base import ApiFormat, StreamObserver, TokenUsage, as_int
from sidegate.formats.fold import append_text, as_index, merge_delta


def _details(usage: dict[str, Any], key: str, field: str) -> int:
    details = usage.get(key)
    return as_int(details.get(field)) if isinstance(details, dict) else 0


def chat_usage(usage: Any) -> TokenUsage | None:
    if not isinstance(usage, dict):
        return None
    return TokenUsage(
        input=as_int(usage.get("prompt_tokens")),
        output=as_int(usage.get("completion_tokens")),
        cache_read=_details(usage, "prompt_tokens_details", "cached_tokens"),
        cache_creation=_details(usage, "prompt_tokens_details", "cache_write_tokens"),
        reasoning=_details(usage, "completion_tokens_details", "reasoning_tokens"),
    )


def responses_usage(usage: Any) -> TokenUsage | None:
    if not isinstance(usage, dict):
        return None
    return TokenUsage(
        input=as_int(usage.get("input_tokens")),
        output=as_int(usage.get("output_tokens")),
        cache_read=_details(usage, "input_tokens_details", "cached_tokens"),
        cache_creation=_details(usage, "input_tokens_details", "cache_write_tokens"),
        reasoning=_details(usage, "output_tokens_details", "reasoning_tokens"),
    )


def error_code(obj: dict[str, Any]) -> str | None:
    """The code of an OpenAI-family error object (its `code`, else its `type`)."""
    error = obj.get("error")
    if isinstance(error, dict):
        code = error.get("code") or error.get("type")
        return str(code) if code else None
    return None


class ChatObserver(StreamObserver):
    __slots__ = ()
    closing = "a finish_reason or data: [DONE]"

    def on_done(self) -> None:
        self.ended = True

    def on_json(self, event: str | None, obj: dict[str, Any]) -> bool:
        if "error" in obj:  # an error object mid-stream: the SDK raises it
            self.failing(error_code(obj))
            return False
        choices = obj.get("choices")
        if choices:
            for choice in choices:
                delta = choice.get("delta") or {}
                content = delta.get("content")
                if isinstance(content, str):
                    self.text_chars += len(content)
                for call in delta.get("tool_calls") or ():
                    args = (call.get("function") or {}).get("arguments")
                    if isinstance(args, str):
                        self.text_chars += len(args)
                if choice.get("finish_reason"):
                    self.finish_reason = choice["finish_reason"]
                    self.ended = True  # the answer is whole even if a server leaves out [DONE]
        usage = obj.get("usage")
        if usage:
            self.usage = chat_usage(usage)
            return self.strip_usage and not choices
        return False


class ChatAggregator:
    __slots__ = ("_choices", "_error", "_top", "_usage")

    def __init__(self) -> None:
        self._top: dict[str, Any] = {}
        self._choices: dict[int, dict[str, Any]] = {}
        self._usage: Any = None
        self._error: Any = None

    def add(self, event: str | None, obj: dict[str, Any]) -> None:
        if isinstance(obj.get("error"), dict):
            self._error = obj["error"]
            return
        for key, value in obj.items():
            if key not in ("choices", "usage", "object") and (value is not None or key not in self._top):
                self._top[key] = value
        if obj.get("usage") is not None:
            self._usage = obj["usage"]
        for choice in obj.get("choices") or ():
            if isinstance(choice, dict):
                self._choice(choice)

    def _choice(self, choice: dict[str, Any]) -> None:
        index = as_index(choice.get("index"))
        state = self._choices.get(index)
        if state is None:
            state = self._choices[index] = {"index": index, "message": {}, "logprobs": None, "finish_reason": None}
        if isinstance(choice.get("delta"), dict):
            merge_delta(state["message"], choice["delta"])
        if isinstance(choice.get("logprobs"), dict):
            if state["logprobs"] is None:
                state["logprobs"] = {}
            merge_delta(state["logprobs"], choice["logprobs"])
        if choice.get("finish_reason") is not None:
            state["finish_reason"] = choice["finish_reason"]

    def result(self) -> dict[str, Any]:
        choices = []
        for index in sorted(self._choices):
            state = self._choices[index]
            message = {"role": "assistant", "content": None, **state["message"]}
            calls = message.get("tool_calls")
            if isinstance(calls, list):
                for call in calls:
                    if isinstance(call, dict):
                        call.pop("index", None)
                if not message["content"]:
                    message["content"] = None  # as a whole answer with only tool calls has it
            choices.append({**state, "message": message})
        out: dict[str, Any] = {**self._top, "object": "chat.completion", "choices": choices, "usage": self._usage}
        if self._error is not None:
            out["error"] = self._error
        return out


class Chat(ApiFormat):
    name = apis.OPENAI_CHAT
    family = "openai"
    aggregator = ChatAggregator

    def usage_from_json(self, obj: dict[str, Any]) -> TokenUsage | None:
        return chat_usage(obj.get("usage"))

    def response_text_chars(self, obj: dict[str, Any]) -> int:
        total = 0
        for choice in obj.get("choices") or ():
            message = choice.get("message") or {}
            if isinstance(message.get("content"), str):
                total += len(message["content"])
        return total

    def observer(self, strip_usage: bool = False) -> StreamObserver:
        return ChatObserver(strip_usage)


_RESPONSE_DONE = frozenset({"response.completed", "response.incomplete", "response.failed"})


class ResponsesObserver(StreamObserver):
    __slots__ = ()
    closing = "response.completed"

    def on_json(self, event: str | None, obj: dict[str, Any]) -> bool:
        type_name = obj.get("type")
        if type_name == "response.output_text.delta" or type_name == "response.function_call_arguments.delta":
            delta = obj.get("delta")
            if isinstance(delta, str):
                self.text_chars += len(delta)
        elif type_name in _RESPONSE_DONE:
            response = obj.get("response") or {}
            self.usage = responses_usage(response.get("usage")) or self.usage
            self.finish_reason = response.get("status")
            self.ended = True
            if type_name == "response.failed":
                self.failing(error_code(response))
        elif type_name == "error":
            code = obj.get("code")
            self.failing(str(code) if code else None)
        return False


class ResponsesAggregator:
    __slots__ = ("_error", "_items", "_parts", "_snapshot", "_terminal")

    def __init__(self) -> None:
        self._snapshot: dict[str, Any] | None = None
        self._terminal = False
        self._items: dict[int, dict[str, Any]] = {}  # output_index → item, as last announced
        self._parts: dict[tuple[int, int], str] = {}  # (output_index, content_index) → text so far
        self._error: Any = None

    def add(self, event: str | None, obj: dict[str, Any]) -> None:
        type_name = obj.get("type") or event
        if type_name == "error":
            self._error = {k: v for k, v in obj.items() if k not in ("type", "sequence_number")}
            return
        response = obj.get("response")
        if isinstance(response, dict):
            if not self._terminal:
                self._snapshot = response
                self._terminal = type_name in _RESPONSE_DONE
            return
        position = obj.get("output_index")
        if not isinstance(position, int):
            return
        if isinstance(obj.get("item"), dict):
            self._items[position] = obj["item"]
        elif type_name == "response.output_text.delta" and isinstance(obj.get("delta"), str):
            key = (position, as_index(obj.get("content_index")))
            append_text(self._parts, key, obj["delta"])
        elif isinstance(obj.get("delta"), str) and position in self._items:
            item = self._items[position]  # function / custom tool call arguments so far
            field = "arguments" if "arguments" in item else "input" if "input" in item else None
            if field is not None and item.get("status") != "completed":
                append_text(item, field, obj["delta"])

    def _unfinished_output(self) -> list[dict[str, Any]]:
        out = []
        for position in sorted(self._items):
            item = self._items[position]
            if item.get("type") == "message" and item.get("status") != "completed":
                texts = sorted((c, text) for (p, c), text in self._parts.items() if p == position)
                item["content"] = [{"type": "output_text", "text": text, "annotations": []} for _, text in texts]
            out.append(item)
        return out

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self._snapshot) if self._snapshot is not None else {"object": "response"}
        if not self._terminal:
            out["output"] = self._unfinished_output()
            out.setdefault("status", "incomplete")
        if self._error is not None and not out.get("error"):
            out["error"] = self._error
        return out


class Responses(ApiFormat):
    name = apis.OPENAI_RESPONSES
    family = "openai"
    aggregator = ResponsesAggregator

    def usage_from_json(self, obj: dict[str, Any]) -> TokenUsage | None:
        return responses_usage(obj.get("usage"))

    def response_text_chars(self, obj: dict[str, Any]) -> int:
        total = 0
        for item in obj.get("output") or ():
            for part in item.get("content") or ():
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    total += len(part["text"])
        return total

    def observer(self, strip_usage: bool = False) -> StreamObserver:
        return ResponsesObserver(strip_usage)


def embeddings_usage(usage: Any) -> TokenUsage | None:
    return TokenUsage(input=as_int(usage.get("prompt_tokens"))) if isinstance(usage, dict) else None


class Embeddings(ApiFormat):
    name = apis.OPENAI_EMBEDDINGS
    family = "openai"

    def usage_from_json(self, obj: dict[str, Any]) -> TokenUsage | None:
        return embeddings_usage(obj.get("usage"))


class Models(ApiFormat):
    name = apis.OPENAI_MODELS
    family = "openai"
    has_body = False
