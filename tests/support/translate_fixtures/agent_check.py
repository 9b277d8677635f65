"""Manual check that Codex CLI (Responses API) and Claude Code (Messages API) run a tool loop
against an OpenAI-compatible chat-only server through a real `sidegate serve` process.

    python -m tests.support.translate_fixtures.agent_check DIR   # DIR holds the `codex` and `claude` binaries

A scripted chat server plays the model: asked with tools, it calls the agent's shell tool to run
`echo sidegate-ok`; given the tool's output, it answers with a sentence quoting it. sidegate is
started from a policy file whose only provider is that server, narrowed to the chat API
(`apis: [openai.chat, openai.embeddings]`, as for vLLM or Ollama), so every Responses and Messages
call is translated. The check passes when each agent ran the command it was told to (the tool
result reached the server) and printed the final answer; it then prints the usage rows sidegate
wrote. Needs the CLIs installed (npm: @openai/codex, @anthropic-ai/claude-code).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer

from sidegate.auth.credentials import hash_key
from sidegate.telemetry.stores.registry import read_rows
from sidegate.telemetry.usage.row import USAGE

MARKER = "sidegate-ok"
KEY = "sk-agent-check"
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


def _policy(chat_url: str, usage_url: str) -> str:
    return f"""\
server: {{path_prefix: /ai-gateway}}
principals:
  agent-check: {{type: service_principal, keys: ["{hash_key(KEY)}"]}}
providers:
  chat-only: {{kind: openai, base_url: "{chat_url}", api_key: scripted, apis: [openai.chat, openai.embeddings]}}
models:
  "*": {{destinations: [{{provider: chat-only, model: scripted-model}}]}}
usage: {{store: "{usage_url}"}}
"""


@asynccontextmanager
async def sidegate_serve(policies: Path) -> AsyncIterator[str]:
    """`sidegate serve --policies DIR` on a free loopback port; yields its API base URL. Stopped
    with SIGTERM, which flushes the usage rows."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidegate", "serve", "--policies", str(policies), "--listen", f"127.0.0.1:{port}",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    origin = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(200):
                if proc.returncode is not None:
                    raise RuntimeError(f"sidegate serve exited with {proc.returncode}")
                try:
                    async with session.get(origin + "/readyz") as ready:
                        if ready.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.05)
            else:
                raise RuntimeError("sidegate serve did not become ready")
        yield origin + "/ai-gateway"
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 60)


def _print_rows(usage_url: str) -> None:
    print("usage rows written by sidegate:")
    for row in read_rows(usage_url, USAGE):
        route = ",".join(f"{a['destination']}:{a['status']}:{a['reason']}" for a in row["routing_information"])
        print(f"  {row['client']:<12} {row['api_type']:<26} {row['status_code']} stream={row['streaming']!s:<5} "
              f"dest={row['destination_type']}/{row['destination_model']} in={row['input_tokens']} "
              f"out={row['output_tokens']} estimated={row['tokens_estimated']} error={row['error_code']} [{route}]")


async def main(bin_dir: str) -> int:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    failures = 0
    with tempfile.TemporaryDirectory() as work:
        policies, home = Path(work, "policies"), Path(work, "home")
        policies.mkdir()
        home.mkdir()
        usage_url = f"sqlite:///{work}/usage.db"
        (policies / "agent-check.yaml").write_text(_policy(f"http://127.0.0.1:{server.port}/v1", usage_url))
        async with sidegate_serve(policies) as base:
            env = {**os.environ, "HOME": str(home), "CODEX_HOME": str(home), "SG_KEY": KEY}
            Path(home, "config.toml").write_text(
                'model = "gpt-5-codex"\nmodel_provider = "sg"\n[model_providers.sg]\nname = "sg"\n'
                f'base_url = "{base}/openai/v1"\nenv_key = "SG_KEY"\nwire_api = "responses"\n')
            code, out = await _run([f"{bin_dir}/codex", "exec", "--skip-git-repo-check",
                                    "--dangerously-bypass-approvals-and-sandbox", f"Run: echo {MARKER}"],
                                   env, str(home))
            ok = _tool_result_seen() and "The command printed:" in out
            print(f"codex exit={code} tool-loop={'ok' if ok else 'FAILED'}\n{out[-1500:]}")
            failures += not ok
            SEEN.clear()
            env = {**os.environ, "HOME": str(home), "ANTHROPIC_BASE_URL": f"{base}/anthropic",
                   "ANTHROPIC_API_KEY": KEY, "DISABLE_TELEMETRY": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}
            code, out = await _run([f"{bin_dir}/claude", "-p", f"Run: echo {MARKER}", "--allowedTools", "Bash"],
                                   env, str(home))
            ok = _tool_result_seen() and f"The command printed: {MARKER}" in out
            print(f"claude exit={code} tool-loop={'ok' if ok else 'FAILED'}\n{out[-1500:]}")
            failures += not ok
        _print_rows(usage_url)
    await server.close()
    return failures


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1])))
