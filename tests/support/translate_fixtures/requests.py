"""Realistic caller request bodies, per caller format: tool loops with parallel calls, images
inline and by URL, JSON schema output, thinking, stop sequences and sampling controls."""

from __future__ import annotations

from typing import Any

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
PDF = "JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PC9UeXBlL0NhdGFsb2c+PgplbmRvYmoKdHJhaWxlcgo8PC9Sb290IDEgMCBSPj4KJSVFT0YK"
IMAGE_URL = "https://example.com/cat.png"

WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "City name"},
                   "unit": {"type": "string", "enum": ["c", "f"]}},
    "required": ["city"],
}
TIME = {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}
ANSWER_SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}, "score": {"type": "number"}},
                 "required": ["answer", "score"], "additionalProperties": False}


def _chat_tools() -> list[dict[str, Any]]:
    return [
        {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                          "parameters": WEATHER}},
        {"type": "function", "function": {"name": "get_time", "description": "Time in a zone", "parameters": TIME,
                                          "strict": True}},
    ]


CHAT: dict[str, dict[str, Any]] = {
    "simple": {
        "model": "gpt-5", "max_completion_tokens": 300, "temperature": 0.3, "top_p": 0.9, "stop": ["END", "STOP"],
        "seed": 7, "user": "alice",
        "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hello ✓"}],
    },
    "multi_turn_images": {
        "model": "gpt-5",
        "messages": [
            {"role": "developer", "content": [{"type": "text", "text": "You describe images."}]},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in these?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "low"}},
                {"type": "image_url", "image_url": {"url": IMAGE_URL}},
            ]},
            {"role": "assistant", "content": "A pixel and a cat."},
            {"role": "system", "content": "Answer in French from now on."},
            {"role": "user", "content": "And the colours?"},
        ],
    },
    "tool_loop": {
        "model": "gpt-5", "tools": _chat_tools(), "tool_choice": "auto", "parallel_tool_calls": True,
        "messages": [
            {"role": "user", "content": "Weather in Paris and time in Tokyo?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_A1", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "c"}'}},
                {"id": "call_B2", "type": "function",
                 "function": {"name": "get_time", "arguments": '{"tz": "Asia/Tokyo"}'}},
            ]},
            {"role": "tool", "tool_call_id": "call_A1", "content": "18°C, cloudy"},
            {"role": "tool", "tool_call_id": "call_B2", "content": [{"type": "text", "text": "21:04"}]},
            {"role": "assistant", "content": "Paris: 18°C. Tokyo: 21:04."},
            {"role": "user", "content": "Thanks, now Rome?"},
        ],
    },
    "forced_tool_serial": {
        "model": "gpt-5", "tools": _chat_tools(), "parallel_tool_calls": False,
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "messages": [{"role": "user", "content": "Weather in Oslo"}],
    },
    "json_schema": {
        "model": "gpt-5", "stream": True, "stream_options": {"include_usage": True},
        "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": ANSWER_SCHEMA,
                                                                   "strict": True}},
        "messages": [{"role": "user", "content": "Rate this."}],
    },
    "reasoning": {
        "model": "gpt-5", "reasoning_effort": "high", "max_completion_tokens": 20000, "stream": True,
        "messages": [{"role": "user", "content": "Prove it."}],
    },
}


def _anthropic_tools() -> list[dict[str, Any]]:
    return [
        {"name": "get_weather", "description": "Weather for a city", "input_schema": WEATHER},
        {"name": "get_time", "description": "Time in a zone", "input_schema": TIME,
         "cache_control": {"type": "ephemeral"}},
    ]


ANTHROPIC: dict[str, dict[str, Any]] = {
    "claude_code_like": {
        "model": "claude-sonnet-4-5", "max_tokens": 32000, "stream": True,
        "thinking": {"type": "enabled", "budget_tokens": 8000},
        "metadata": {"user_id": "user_abc_account__session_1"},
        "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
                   {"type": "text", "text": "Use tools."}],
        "tools": _anthropic_tools(),
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
                                         {"type": "text", "text": "Weather in Paris and time in Tokyo?"}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Two tools.", "signature": "EqQBsig"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_01B", "name": "get_time", "input": {"tz": "Asia/Tokyo"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "18°C"},
                {"type": "tool_result", "tool_use_id": "toolu_01B", "is_error": True,
                 "content": [{"type": "text", "text": "tz service down"}]},
            ]},
        ],
    },
    "images": {
        "model": "claude-sonnet-4-5", "max_tokens": 500,
        "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            {"type": "image", "source": {"type": "url", "url": IMAGE_URL}},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}},
            {"type": "text", "text": "Describe all three."},
        ]}],
    },
    "tool_choice_any_serial": {
        "model": "claude-sonnet-4-5", "max_tokens": 400, "tools": _anthropic_tools(),
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "messages": [{"role": "user", "content": "Time in Lima?"}],
    },
    "structured_stop": {
        "model": "claude-sonnet-4-5", "max_tokens": 400, "temperature": 0.5, "top_p": 0.8, "top_k": 40,
        "stop_sequences": ["\n\nHuman:"], "output_config": {"format": {"type": "json_schema", "schema": ANSWER_SCHEMA}},
        "system": "Reply in JSON.",
        "messages": [{"role": "user", "content": "Rate this."}, {"role": "assistant", "content": "{"}],
    },
}

GEMINI_SIGNATURE = "Cp8BAXLI2nyFakeGeminiSignature+/="

GEMINI: dict[str, dict[str, Any]] = {
    "cli_like": {
        "systemInstruction": {"role": "user", "parts": [{"text": "You are Gemini CLI."}]},
        "tools": [{"functionDeclarations": [
            {"name": "get_weather", "description": "Weather for a city", "parametersJsonSchema": WEATHER},
            {"name": "get_time", "description": "Time in a zone", "parameters": {
                "type": "OBJECT", "properties": {"tz": {"type": "STRING", "nullable": True}}, "required": ["tz"]}},
        ]}],
        "generationConfig": {"temperature": 0.2, "topP": 0.95, "maxOutputTokens": 2048,
                             "thinkingConfig": {"includeThoughts": True, "thinkingBudget": 4096}},
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        "contents": [
            {"role": "user", "parts": [{"text": "Weather in Paris and time in Tokyo?"}]},
            {"role": "model", "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                 "thoughtSignature": GEMINI_SIGNATURE},
                {"functionCall": {"name": "get_time", "args": {"tz": "Asia/Tokyo"}}},
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"output": "18°C"}}},
                {"functionResponse": {"name": "get_time", "response": {"error": "tz service down"}}},
            ]},
            {"role": "model", "parts": [{"text": "Paris is 18°C; the time service failed."}]},
            {"role": "user", "parts": [{"text": "Try Rome."}]},
        ],
    },
    "images": {
        "contents": [{"role": "user", "parts": [
            {"inlineData": {"mimeType": "image/png", "data": PNG}},
            {"fileData": {"mimeType": "image/png", "fileUri": IMAGE_URL}},
            {"text": "Describe both."},
        ]}],
    },
    "json_schema": {
        "contents": [{"parts": [{"text": "Rate this."}]}],
        "generationConfig": {"responseMimeType": "application/json", "stopSequences": ["END"],
                             "responseSchema": {"type": "OBJECT", "properties": {
                                 "answer": {"type": "STRING"}, "score": {"type": "NUMBER"}}}},
    },
    "forced_tool": {
        "contents": [{"role": "user", "parts": [{"text": "Time in Lima?"}]}],
        "tools": [{"functionDeclarations": [{"name": "get_time", "parametersJsonSchema": TIME},
                                            {"name": "get_weather", "parametersJsonSchema": WEATHER}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_time"]}},
    },
}

SHELL_TOOL = {
    "type": "function", "name": "shell", "description": "Runs a shell command.", "strict": False,
    "parameters": {"type": "object", "properties": {"command": {"type": "array", "items": {"type": "string"}},
                                                    "workdir": {"type": "string"}},
                   "required": ["command"], "additionalProperties": False},
}
APPLY_PATCH_TOOL = {"type": "custom", "name": "apply_patch", "description": "Apply a patch to files.",
                    "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/s"}}
PATCH = "*** Begin Patch\n*** Update File: a.py\n@@\n-x = 1\n+x = 2\n*** End Patch\n"

RESPONSES: dict[str, dict[str, Any]] = {
    "codex_like": {
        "model": "gpt-5-codex", "stream": True, "store": False, "parallel_tool_calls": False,
        "instructions": "You are Codex, running in the Codex CLI.",
        "tools": [SHELL_TOOL, APPLY_PATCH_TOOL], "tool_choice": "auto",
        "reasoning": {"effort": "medium", "summary": "auto"}, "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "0199a6c4", "text": {"verbosity": "medium"},
        "input": [
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "<environment_context><cwd>/repo</cwd></environment_context>"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "bump x"}]},
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Look first."}],
             "encrypted_content": "gAAAAopenai-own-blob"},
            {"type": "function_call", "id": "fc_1", "call_id": "call_ls", "name": "shell",
             "arguments": '{"command":["cat","a.py"]}'},
            {"type": "function_call_output", "call_id": "call_ls", "output": "x = 1\n"},
            {"type": "custom_tool_call", "id": "ctc_1", "call_id": "call_patch", "name": "apply_patch",
             "input": PATCH},
            {"type": "custom_tool_call_output", "call_id": "call_patch", "output": "Done!"},
            {"type": "message", "role": "assistant", "content": [
                {"type": "output_text", "text": "Bumped x to 2.", "annotations": []}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "thanks"}]},
        ],
    },
    "images_files": {
        "model": "gpt-5", "max_output_tokens": 800, "temperature": 0.4, "top_p": 0.9,
        "input": [{"role": "developer", "content": "Describe."}, {"role": "user", "content": [
            {"type": "input_text", "text": "What are these?"},
            {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}", "detail": "high"},
            {"type": "input_image", "image_url": IMAGE_URL},
            {"type": "input_file", "filename": "spec.pdf", "file_data": f"data:application/pdf;base64,{PDF}"},
        ]}],
    },
    "json_schema": {
        "model": "gpt-5", "input": "Rate this.",
        "text": {"format": {"type": "json_schema", "name": "answer", "schema": ANSWER_SCHEMA, "strict": True}},
    },
    "forced_function": {
        "model": "gpt-5", "input": "list files", "tools": [SHELL_TOOL],
        "tool_choice": {"type": "function", "name": "shell"},
    },
}
