"""`sidegate validate`, `serve` and `usage` agree on where the policy directory is; `validate`
prints what it found in plain English and warns about a policy that cannot serve anyone, still
exiting 0; key hashes are accepted in either case of hex."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import aiohttp
import pytest
import structlog
from tests.support.gateway import KEY, key_hash
from tests.support.served import free_port, wait_until_up

from sidegate.cli import main, parser
from sidegate.policy.loader import PolicyError, load_policy_dir
from sidegate.policy.reload import load_compiled

MOCK = "providers: {echo: {kind: mock}}\nmodels: {echo: {destinations: [{provider: echo}]}}\n"
KEYED = MOCK + f'principals: {{alice: {{keys: ["{key_hash(KEY)}"]}}}}\n'


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(textwrap.dedent(text))
    return directory


def sidegate(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "SIDEGATE_POLICIES"} | (env or {})
    return subprocess.run([sys.executable, "-m", "sidegate", *args], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=60)


# ---------------------------------------------------------------- where the policies are


def test_validate_finds_the_directory_where_serve_and_usage_do(tmp_path: Path) -> None:
    write(tmp_path / "policies", {"p.yaml": KEYED})
    write(tmp_path / "elsewhere", {"p.yaml": KEYED, "q.yaml": "tags: {stamp: {app: x}}\n"})
    default = sidegate("validate", cwd=tmp_path)
    assert default.returncode == 0, default.stderr
    assert default.stdout.startswith("policies: OK (1 file,")
    from_env = sidegate("validate", cwd=tmp_path, env={"SIDEGATE_POLICIES": str(tmp_path / "elsewhere")})
    assert from_env.returncode == 0 and from_env.stdout.startswith(f"{tmp_path / 'elsewhere'}: OK (2 files,")
    for args in (["elsewhere"], ["--policies", "elsewhere"]):
        given = sidegate("validate", *args, cwd=tmp_path, env={"SIDEGATE_POLICIES": "ignored-when-given"})
        assert given.returncode == 0 and given.stdout.startswith("elsewhere: OK (2 files,"), given.stderr
    both = sidegate("validate", "policies", "--policies", "elsewhere", cwd=tmp_path)
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
    missing = sidegate("validate", cwd=tmp_path / "elsewhere")
    assert missing.returncode == 1 and "policies: the policy directory does not exist" in missing.stderr


@pytest.mark.parametrize("command", ["serve", "validate", "usage"])
def test_every_command_has_the_same_policies_option_and_says_its_default(
        command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SIDEGATE_POLICIES", "/etc/sidegate/policies")
    args = parser().parse_args([command])
    assert args.policies == "/etc/sidegate/policies"
    monkeypatch.delenv("SIDEGATE_POLICIES")
    assert parser().parse_args([command]).policies == "policies"
    with pytest.raises(SystemExit):
        main([command, "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--policies DIR" in help_text
    assert "default: $SIDEGATE_POLICIES, else ./policies" in help_text


# ---------------------------------------------------------------- what validate prints


@pytest.mark.parametrize(("files", "counts"), [
    ({"p.yaml": KEYED}, "1 file, 1 provider, 1 model service, 1 principal"),
    ({"p.yaml": KEYED, "q.yml": "providers: {two: {kind: mock}}\nmodels: {e2: {destinations: [{provider: two}]}}\n"
      "principals: {bob: {keys: []}}\n"}, "2 files, 2 providers, 2 model services, 2 principals"),
])
def test_validate_counts_in_plain_english(tmp_path: Path, files: dict[str, str], counts: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path / "p", files)
    assert main(["validate", str(tmp_path / "p")]) == 0
    out, err = capsys.readouterr()
    assert out == f"{tmp_path / 'p'}: OK ({counts})\n" and err == ""


NO_KEYS = """\
    providers: {echo: {kind: mock}}
    models: {echo: {destinations: [{provider: echo}]}}
    principals:
      alice: {groups: [a]}
    """
NO_MODELS = f"""\
    providers: {{echo: {{kind: mock}}}}
    principals: {{alice: {{keys: ["{key_hash(KEY)}"]}}}}
    models: {{}}
    """


@pytest.mark.parametrize(("text", "where", "words"), [
    (NO_KEYS, "p.yaml:3", ["no principal has a key", "401", "mode: none"]),
    ("auth: {mode: keys}\n" + MOCK, "p.yaml:1", ["no principal has a key"]),
    (NO_MODELS, "p.yaml:3", ["no model services"]),
], ids=["principals-without-keys", "no-principals", "no-models"])
def test_a_policy_that_serves_no_one_is_a_warning_with_file_and_line(
        tmp_path: Path, text: str, where: str, words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    directory = write(tmp_path / "p", {"p.yaml": text})
    assert main(["validate", str(directory)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"{directory}: OK with 1 warning (")
    [warning] = err.splitlines()
    assert warning.startswith(f"{directory / where}: warning: "), warning
    for word in words:
        assert word in warning
    assert load_policy_dir(directory).warnings == (warning,)


def test_nothing_at_all_warns_twice_at_the_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = write(tmp_path / "p", {"p.yaml": "tags: {stamp: {app: x}}\n"})
    assert main(["validate", str(directory)]) == 0
    out, err = capsys.readouterr()
    assert "OK with 2 warnings" in out
    assert [line.split(": warning: ")[0] for line in err.splitlines()] == [str(directory)] * 2


@pytest.mark.parametrize("text", [
    KEYED,
    "auth: {mode: none, default_principal: svc}\nprincipals: {svc: {type: service_principal}}\n" + MOCK,
], ids=["keys", "auth-none"])
def test_a_policy_that_can_serve_has_no_warning(tmp_path: Path, text: str) -> None:
    assert load_policy_dir(write(tmp_path / "p", {"p.yaml": text})).warnings == ()


def test_an_invalid_policy_still_fails_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = write(tmp_path / "p", {"p.yaml": "principals: {alice: {keys: [nope]}}\n"})
    assert main(["validate", str(directory)]) == 1
    assert "p.yaml:1" in capsys.readouterr().err


def test_serve_logs_the_warnings_at_load(tmp_path: Path) -> None:
    directory = write(tmp_path / "p", {"p.yaml": NO_KEYS})
    with structlog.testing.capture_logs() as logs:
        load_compiled(directory)
    warnings = [entry for entry in logs if entry["event"] == "policy warning"]
    assert len(warnings) == 1 and warnings[0]["log_level"] == "warning"
    expected = f"{directory / 'p.yaml'}:3: warning: auth.mode is keys but no principal has a key"
    assert warnings[0]["warning"].startswith(expected)


async def test_serve_process_prints_the_warning_and_serves(tmp_path: Path) -> None:
    write(tmp_path / "policies", {"p.yaml": NO_KEYS})  # found as ./policies, the default
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "sidegate", "serve", "--listen", f"127.0.0.1:{port}"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={k: v for k, v in os.environ.items() if k != "SIDEGATE_POLICIES"})
    try:
        async with aiohttp.ClientSession() as http:
            await wait_until_up(proc, f"http://127.0.0.1:{port}/healthz", http, lambda: "")
            async with http.post(f"http://127.0.0.1:{port}/ai-gateway/mlflow/v1/chat/completions",
                                 json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]},
                                 headers={"Authorization": f"Bearer {KEY}"}) as r:
                assert r.status == 401  # as the warning said
    finally:
        proc.terminate()
        out, _ = await asyncio.to_thread(proc.communicate, timeout=20)
    text = out.decode()
    assert "policy warning" in text and "p.yaml:3: warning: auth.mode is keys but no principal has a key" in text


# ---------------------------------------------------------------- key hashes


def test_upper_case_key_hash_is_accepted_and_normalised(tmp_path: Path) -> None:
    upper = "sha256:" + hashlib.sha256(KEY.encode()).hexdigest().upper()
    loaded = load_policy_dir(write(tmp_path / "p", {"p.yaml": MOCK + f'principals: {{a: {{keys: ["{upper}"]}}}}\n'}))
    assert loaded.model.principals["a"].keys == [key_hash(KEY)]
    assert loaded.warnings == ()


def test_the_same_key_in_both_cases_is_still_held_twice(tmp_path: Path) -> None:
    lower = key_hash(KEY)
    upper = "sha256:" + lower.removeprefix("sha256:").upper()
    text = MOCK + f'principals:\n  a: {{keys: ["{lower}"]}}\n  b: {{keys: ["{upper}"]}}\n'
    with pytest.raises(PolicyError) as caught:
        load_policy_dir(write(tmp_path / "p", {"p.yaml": text}))
    assert "p.yaml:5" in str(caught.value) and "also assigned to principal 'a'" in str(caught.value)


@pytest.mark.parametrize("bad", ["sha256:" + "G" * 64, "sha256:" + "a" * 63, "SHA1:" + "a" * 64, "a" * 64])
def test_malformed_key_hashes_are_still_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy_dir(write(tmp_path / "p", {"p.yaml": MOCK + f'principals: {{a: {{keys: ["{bad}"]}}}}\n'}))
    assert "sha256:<64 hex digits>" in str(caught.value)


async def test_upper_case_key_hash_authenticates(gateway) -> None:
    upper = "sha256:" + hashlib.sha256(b"sk-upper").hexdigest().upper()
    gw = await gateway(MOCK + f'principals: {{carol: {{keys: ["{upper}"]}}}}\n', principals=False)
    async with aiohttp.ClientSession() as http, http.post(
            gw.base + "/mlflow/v1/chat/completions", headers={"Authorization": "Bearer sk-upper"},
            json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]}) as r:
        assert r.status == 200, await r.text()
    assert (await gw.row())["requester"] == "carol"


def test_schema_for_editors_beside_the_policies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The README's editor set-up: the schema written into the policy directory is not read as a
    policy, and the yaml-language-server line is only a comment to sidegate."""
    assert main(["schema"]) == 0
    schema = capsys.readouterr().out
    assert json.loads(schema)["title"] == "sidegate policy"
    directory = write(tmp_path / "policies", {"main.yaml": "# yaml-language-server: $schema=./policy.schema.json\n"
                                              + KEYED})
    (directory / "policy.schema.json").write_text(schema)
    assert main(["validate", str(directory)]) == 0
    assert capsys.readouterr().out.startswith(f"{directory}: OK (1 file, 1 provider,")
