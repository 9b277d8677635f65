"""Manual check that Codex CLI (Responses API) and Claude Code (Messages API) run a tool loop
against an OpenAI-compatible chat-only server through the translating gateway.

    python -m tests.translate_fixtures.agent_check DIR   # DIR holds the `codex` and `claude` binaries

A scripted chat server plays the model: asked with tools, it calls the agent's shell tool to run
`echo sidegate-ok`; given the tool's output, it answers with a sentence quoting it. The check
passes when each agent ran the command it was told to (the tool result reached the server) and
printed the final answer. Needs the CLIs installed (npm: @openai/codex, @anthropic-ai/claude-code).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer
from tests.translate_fixtures.proxy import Destination, translating_gateway

from sidegate import apis
from sidegate.upstream.providers import ADAPTERS

MARKER = "sidegate-ok"
SEEN: list[dict[str, Any]] = []


def _shell_call(tools: list[dict[str, Any]]) -> tuple[str, str] | None:
    for tool in tools:
        fn = tool.get("function") or {}
        name, props = fn.get("name", ""), (fn.get("parameters") or {}).get("properties") or {}
        if name in ("Bash", "shell", "shell_command", "exec_command", "local_shell"):
            command = props.get("command") or props.get("cmd") or {}
            key = "cmd" if "cmd" in props and "command" not in props else "command"
            value: Any = ["bash", "-lc", f"echo {MARKER}"] if command.get("type") == "array" else f"echo {MARKER}"
            args: dict[str, Any] = {key: value}
            if name == "Bash":
                args["description"] = "Print the marker"
            return name, orjson.dumps(args).decode()
    return None


def _chunks(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    call = _shell_call(body.get("tools") or [])
    if last.get("role") == "tool":
        content = last.get("content")
        text = content if isinstance(content, str) else "".join(p.get("text", "") for p in content or [])
        return [{"content": f"The command printed: {text.strip()}"}, {"finish": "stop"}]
    if call is None:
        return [{"content": "ok"}, {"finish": "stop"}]
    name, args = call
    return [{"tool": (name, args)}, {"finish": "tool_calls"}]


async def chat(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    SEEN.append(body)
    base = {"id": "chatcmpl-agent", "object": "chat.completion.chunk", "created": 1, "model": body["model"]}
    pieces = _chunks(body)
    if not body.get("stream"):
        message: dict[str, Any] = {"role": "assistant", "content": None}
        finish = "stop"
        for piece in pieces:
            if "content" in piece:
                message["content"] = piece["content"]
            elif "tool" in piece:
                message["tool_calls"] = [{"id": "call_1", "type": "function",
                                          "function": {"name": piece["tool"][0], "arguments": piece["tool"][1]}}]
            else:
                finish = piece["finish"]
        return web.json_response({**base, "object": "chat.completion", "choices": [
            {"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60}})
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)

    async def send(delta: dict[str, Any], finish: str | None = None) -> None:
        chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")

    await send({"role": "assistant", "content": ""})
    for piece in pieces:
        if "content" in piece:
            await send({"content": piece["content"]})
        elif "tool" in piece:
            name, args = piece["tool"]
            await send({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                        "function": {"name": name, "arguments": ""}}]})
            for i in range(0, len(args), 7):
                await send({"tool_calls": [{"index": 0, "function": {"arguments": args[i:i + 7]}}]})
        else:
            await send({}, piece["finish"])
    usage = {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60}
    await response.write(b"data: " + orjson.dumps({**base, "choices": [], "usage": usage}) + b"\n\n")
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def _run(cmd: list[str], env: dict[str, str], cwd: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(*cmd, env=env, cwd=cwd, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=240)
    return proc.returncode or 0, out.decode(errors="replace")


def _tool_result_seen() -> bool:
    return any(m.get("role") == "tool" and MARKER in orjson.dumps(m.get("content")).decode()
               for body in SEEN for m in body.get("messages") or [])


async def main(bin_dir: str) -> int:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    chat_only = ADAPTERS["openai"].apis - {apis.OPENAI_RESPONSES}
    dest = Destination("openai", f"http://127.0.0.1:{server.port}/v1", "scripted-model", chat_only)
    failures = 0
    async with translating_gateway(dest) as base:
        with tempfile.TemporaryDirectory() as home:
            env = {**os.environ, "HOME": home, "CODEX_HOME": home, "SG_KEY": "k"}
            Path(home, "config.toml").write_text(
                'model = "gpt-5-codex"\nmodel_provider = "sg"\n[model_providers.sg]\nname = "sg"\n'
                f'base_url = "{base}/openai/v1"\nenv_key = "SG_KEY"\nwire_api = "responses"\n')
            code, out = await _run([f"{bin_dir}/codex", "exec", "--skip-git-repo-check",
                                    "--dangerously-bypass-approvals-and-sandbox", f"Run: echo {MARKER}"], env, home)
            ok = _tool_result_seen() and "The command printed:" in out
            print(f"codex exit={code} tool-loop={'ok' if ok else 'FAILED'}\n{out[-1500:]}")
            failures += not ok
            SEEN.clear()
            env = {**os.environ, "HOME": home, "ANTHROPIC_BASE_URL": f"{base}/anthropic", "ANTHROPIC_API_KEY": "k",
                   "DISABLE_TELEMETRY": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}
            code, out = await _run([f"{bin_dir}/claude", "-p", f"Run: echo {MARKER}", "--allowedTools", "Bash"],
                                   env, home)
            ok = _tool_result_seen() and f"The command printed: {MARKER}" in out
            print(f"claude exit={code} tool-loop={'ok' if ok else 'FAILED'}\n{out[-1500:]}")
            failures += not ok
    await server.close()
    return failures


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1])))
