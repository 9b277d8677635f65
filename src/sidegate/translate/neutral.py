"""The neutral representation every codec decodes into and encodes from.

It holds what the three provider families can all say about one generation call: a system prompt,
a conversation of user and assistant turns made of parts (text, media, tool calls, tool results,
thinking), tool definitions, sampling controls; an answer with its parts, finish reason and usage;
and the events a streamed answer is made of. Nothing here knows a wire format.

Conventions:
* A tool call's `arguments` is JSON text, as OpenAI sends it; codecs of formats that carry an
  object (Anthropic `input`, Gemini `args`) parse or dump it at their edge.
* `Thinking.signature` is the opaque token the producing provider needs to see again to accept the
  thinking block in a later turn; `origin` names that provider family so that a signature is only
  ever sent back to the family that minted it.
* Usage is `sidegate.formats.base.TokenUsage`, normalised as the usage table is: input includes
  cache reads and writes, output includes reasoning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sidegate.formats.base import TokenUsage

# Finish reasons, in neutral terms. Codecs map their own names onto these and back.
STOP = "stop"  # the model finished its turn
STOP_SEQUENCE = "stop_sequence"  # a caller-given stop sequence matched
LENGTH = "length"  # the token limit (or the context window) was reached
TOOL_CALLS = "tool_calls"  # the turn ends with tool calls to run
CONTENT_FILTER = "content_filter"  # safety systems or a refusal ended the turn
ERROR = "error"  # the provider gave up (e.g. a malformed function call)

Role = Literal["user", "assistant", "system"]


@dataclass(slots=True)
class Text:
    text: str


@dataclass(slots=True)
class Media:
    """An image or document: inline base64 `data`, or a `url` the destination fetches itself."""

    media_type: str | None
    data: str | None = None
    url: str | None = None
    filename: str | None = None
    detail: str | None = None  # OpenAI's image detail hint

    @property
    def is_image(self) -> bool:
        return self.media_type is None or self.media_type.startswith("image/")


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text of an object
    custom: bool = False  # an OpenAI custom (free-form) tool: arguments are {"input": "..."}
    signature: str | None = None  # Gemini puts its thought signature on the call itself
    origin: str | None = None


@dataclass(slots=True)
class ToolResult:
    call_id: str
    content: list[Text | Media]
    is_error: bool = False
    name: str | None = None  # the called tool's name (Gemini needs it; others find it by id)
    custom: bool = False


@dataclass(slots=True)
class Thinking:
    text: str
    signature: str | None = None
    origin: str | None = None  # family that minted the signature
    redacted: bool = False  # Anthropic redacted_thinking: `signature` holds the opaque data


Part = Text | Media | ToolCall | ToolResult | Thinking


@dataclass(slots=True)
class Message:
    role: Role  # "system" only for instructions given in the middle of a conversation
    parts: list[Part]


@dataclass(slots=True)
class Tool:
    name: str
    description: str | None
    parameters: dict[str, object]  # JSON Schema of the arguments object
    strict: bool | None = None
    custom: bool = False  # free-form input; parameters is the one-string-field schema


@dataclass(slots=True)
class ToolChoice:
    mode: Literal["auto", "none", "required", "tool"]
    name: str | None = None


# The tool-choice modes that are plain strings in OpenAI's formats (and neutral names here).
PLAIN_CHOICES: dict[str, Literal["auto", "none", "required"]] = {"auto": "auto", "none": "none", "required": "required"}


@dataclass(slots=True)
class ResponseFormat:
    format_type: Literal["json_object", "json_schema"]
    schema: dict[str, object] | None = None
    name: str | None = None
    strict: bool | None = None
    description: str | None = None


@dataclass(slots=True)
class Reasoning:
    """Extended thinking asked for. `effort` is OpenAI's scale (minimal…xhigh); `budget` a token
    budget (Anthropic, Gemini). Either may be missing; codecs derive one from the other."""

    enabled: bool = True
    effort: str | None = None
    budget: int | None = None
    summaries: bool = True  # return the thinking text (Gemini includeThoughts, Anthropic display)


@dataclass(slots=True)
class Request:
    messages: list[Message]
    system: list[Text] = field(default_factory=list)
    tools: list[Tool] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: list[str] = field(default_factory=list)
    response_format: ResponseFormat | None = None
    reasoning: Reasoning | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    user: str | None = None
    stream: bool = False
    stream_usage: bool = False  # an OpenAI chat caller asked for the usage chunk
    echo: dict[str, object] = field(default_factory=dict)  # request fields the caller's answer repeats
    dropped: list[str] = field(default_factory=list)  # advisory things not sent on, by field path


@dataclass(slots=True)
class Response:
    id: str
    model: str
    created: int
    parts: list[Part]
    finish: str | None
    usage: TokenUsage | None = None
    stop_sequence: str | None = None


# ---------------------------------------------------------------- stream events


@dataclass(slots=True)
class Start:
    id: str
    model: str
    created: int
    usage: TokenUsage | None = None  # what is known at the start (Anthropic: the prompt side)


@dataclass(slots=True)
class TextDelta:
    text: str


@dataclass(slots=True)
class ThinkingDelta:
    text: str = ""
    signature: str | None = None  # arrives once, at the end of the block, when it arrives
    origin: str | None = None
    redacted: bool = False


@dataclass(slots=True)
class ToolCallStart:
    index: int  # position among the answer's tool calls, 0-based, as the destination numbered them
    id: str
    name: str
    custom: bool = False
    signature: str | None = None
    origin: str | None = None


@dataclass(slots=True)
class ToolArgsDelta:
    index: int
    fragment: str


@dataclass(slots=True)
class Finish:
    reason: str
    stop_sequence: str | None = None


@dataclass(slots=True)
class UsageUpdate:
    usage: TokenUsage  # cumulative: replaces what was known


@dataclass(slots=True)
class End:
    """The destination signalled the end of the stream ([DONE], message_stop, …)."""


@dataclass(slots=True)
class StreamError:
    status: int
    category: str
    message: str


Event = Start | TextDelta | ThinkingDelta | ToolCallStart | ToolArgsDelta | Finish | UsageUpdate | End | StreamError


def response_text(parts: list[Part]) -> str:
    return "".join(part.text for part in parts if isinstance(part, Text))


def joined(texts: list[Text], sep: str = "\n\n") -> str:
    return sep.join(t.text for t in texts)


# Reasoning effort (OpenAI's scale) ↔ thinking budget in tokens (Anthropic, Gemini).
EFFORT_BUDGET = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32768, "max": 32768}


def budget_for(reasoning: Reasoning) -> int:
    if reasoning.budget is not None and reasoning.budget > 0:
        return reasoning.budget
    return EFFORT_BUDGET.get(reasoning.effort or "medium", EFFORT_BUDGET["medium"])


def effort_for(reasoning: Reasoning) -> str:
    if reasoning.effort and reasoning.effort in EFFORT_BUDGET:
        return reasoning.effort
    budget = reasoning.budget
    if budget is None or budget < 0:
        return "medium"
    if budget <= EFFORT_BUDGET["low"]:
        return "low"
    return "medium" if budget <= EFFORT_BUDGET["medium"] else "high"
