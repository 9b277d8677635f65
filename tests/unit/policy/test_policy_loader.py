"""The policy loader: files merged, ${VAR} expanded, validated, every problem reported as file:line."""

from __future__ import annotations

import hashlib
import os
import textwrap
from pathlib import Path

import pytest

from sidegate.policy.loader import (
    LoadedPolicy,
    PolicyError,
    directory_fingerprint,
    load_policy_dir,
)
from sidegate.policy.model import DetectorSet

ALICE_KEY = "sha256:" + hashlib.sha256(b"alice-token").hexdigest()
CI_KEY = "sha256:" + hashlib.sha256(b"ci-token").hexdigest()

# DESIGN.md section 3, verbatim but for real key hashes and two long lines wrapped.
EXAMPLE_POLICY = """\
server: {listen: "127.0.0.1:8787", path_prefix: /ai-gateway, admin_listen: "127.0.0.1:9464"}
auth: {mode: keys}                      # keys | none (then default_principal: NAME)
principals:
  alice@example.com: {type: user, groups: [ml-platform], keys: ["ALICE_KEY"]}
  ci-bot:            {type: service_principal, keys: ["CI_KEY"]}
providers:
  openai:    {kind: openai,    base_url: "https://api.openai.com/v1", api_key: "${OPENAI_API_KEY}"}
  anthropic: {kind: anthropic, base_url: "https://api.anthropic.com", api_key: "${ANTHROPIC_API_KEY}"}
  gemini:    {kind: gemini,    base_url: "https://generativelanguage.googleapis.com",
              api_key: "${GEMINI_API_KEY}"}
  vllm:      {kind: openai,    base_url: "http://vllm:8000/v1"}       # any OpenAI-compatible server
  workspace: {kind: databricks, base_url: "https://host/ai-gateway", api_key: "${DATABRICKS_TOKEN}"}
  claude-max: {kind: anthropic, base_url: "https://api.anthropic.com", credentials: passthrough}
  echo:      {kind: mock}                  # built-in deterministic model: offline demos and tests
models:                                    # model services: the names callers put in `model`
  gpt-5:
    destinations:                          # traffic split: weights, chosen at random by weight
      - {provider: openai, model: gpt-5, weight: 90}
      - {provider: vllm, model: qwen3-32b, weight: 10}
    fallbacks:                             # strict order, at most 5, on 429 / 5xx / timeout / reset
      - {provider: anthropic, model: claude-sonnet-4-5}
    timeout_s: 300
  "claude-*": {destinations: [{provider: anthropic}]}   # pattern: model name passed through
rate_limit_store: {url: "memory://"}       # or redis://host:6379/0; on_error: allow | deny
rate_limits:
  - {key: service, model: gpt-5, tokens_per_minute: 2000000}
  - {key: user_default, requests_per_minute: 60, tokens_per_minute: 200000}
  - {key: user, principal: ci-bot, requests_per_minute: 600}
  - {key: user_group, principal: ml-platform, tokens_per_minute: 1000000}
  - {key: request_tag, tag: project, value: chatbot, requests_per_minute: 100}
guardrails:
  - {name: secrets, phase: input, detect: [secrets], action: block}
  - {name: pii, phase: both, detect: {pii: [email, phone, credit_card, us_ssn, ip_address]}, action: mask}
  - {name: words, detect: {keywords: [project-x], regex: ["(?i)internal only"]}, action: block,
     match: {models: [gpt-5], groups: [contractors]}}
tags:
  stamp: {app: my-app, env: "${ENVIRONMENT:-dev}"}   # added to every request; callers can't override
  require: [project]                                  # requests missing these keys are refused
  forward_upstream: true                              # send merged tags upstream in the same header
usage: {store: "sqlite:////var/lib/sidegate/usage.db"}      # postgresql://…, jsonl:////path, none
inference_log: {store: "sqlite:////var/lib/sidegate/inference.db", sample_rate: 1.0,
                max_payload_bytes: 1048576}
telemetry:
  metrics: {labels: [principal, "tag:team"]}          # opt-in high-cardinality labels
  traces: {otlp_endpoint: "${OTEL_EXPORTER_OTLP_ENDPOINT:-}", capture_content: false}
""".replace("ALICE_KEY", ALICE_KEY).replace("CI_KEY", CI_KEY)

EXAMPLE_ENV = {
    "OPENAI_API_KEY": "sk-openai",
    "ANTHROPIC_API_KEY": "sk-ant",
    "GEMINI_API_KEY": "gm-key",
    "DATABRICKS_TOKEN": "dapi-token",
}

PROVIDERS = """\
providers:
  openai: {kind: openai, base_url: "https://api.openai.com/v1"}
  echo: {kind: mock}
"""


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return directory


def load(directory: Path, env: dict[str, str] | None = None) -> LoadedPolicy:
    return load_policy_dir(directory, env=env or {})


def problems(directory: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        load(directory, env)
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


def one_problem(directory: Path, env: dict[str, str] | None = None) -> str:
    found = problems(directory, env)
    assert len(found) == 1, found
    return found[0]


# ----------------------------------------------------------------------------------- whole policies


def test_design_example_loads(tmp_path: Path) -> None:
    write(tmp_path, {"policy.yaml": EXAMPLE_POLICY})
    loaded = load(tmp_path, EXAMPLE_ENV)
    model = loaded.model
    assert loaded.files == (tmp_path / "policy.yaml",)
    assert len(loaded.digest) == 64
    assert model.server.admin_listen == "127.0.0.1:9464"
    assert model.principals["ci-bot"].type == "service_principal"
    assert model.principals["alice@example.com"].keys == [ALICE_KEY]
    assert model.providers["openai"].api_key == "sk-openai"
    assert model.providers["workspace"].api_key == "dapi-token"
    assert model.providers["claude-max"].credentials == "passthrough"
    assert [d.weight for d in model.models["gpt-5"].destinations] == [90, 10]
    assert model.models["claude-*"].destinations[0].model is None
    assert [r.key for r in model.rate_limits][-1] == "request_tag"
    assert model.guardrails[0].detect == ["secrets"]
    pii = model.guardrails[1].detect
    assert isinstance(pii, DetectorSet)
    assert pii.pii == ["email", "phone", "credit_card", "us_ssn", "ip_address"]
    assert model.guardrails[2].match is not None and model.guardrails[2].match.groups == ["contractors"]
    assert model.tags.stamp == {"app": "my-app", "env": "dev"}
    assert model.telemetry.traces.otlp_endpoint == ""
    assert model.inference_log.max_payload_bytes == 1048576


def test_example_environment_overrides_defaults(tmp_path: Path) -> None:
    write(tmp_path, {"policy.yaml": EXAMPLE_POLICY})
    env = EXAMPLE_ENV | {"ENVIRONMENT": "prod", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4318"}
    model = load(tmp_path, env).model
    assert model.tags.stamp["env"] == "prod"
    assert model.telemetry.traces.otlp_endpoint == "http://otel:4318"


def test_env_defaults_to_process_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in EXAMPLE_ENV.items():
        monkeypatch.setenv(name, value)
    write(tmp_path, {"policy.yaml": EXAMPLE_POLICY})
    assert load_policy_dir(str(tmp_path)).model.providers["gemini"].api_key == "gm-key"


def test_empty_file_and_other_files_are_fine(tmp_path: Path) -> None:
    junk = {"README.md": "x: [", ".#c.yaml": "{"}
    write(tmp_path, {"a.yaml": "", "b.yml": "# nothing yet\n", "c.yaml": PROVIDERS} | junk)
    loaded = load(tmp_path)
    assert [f.name for f in loaded.files] == ["a.yaml", "b.yml", "c.yaml"]
    assert set(loaded.model.providers) == {"openai", "echo"}


def test_missing_or_empty_directory_is_an_error(tmp_path: Path) -> None:
    for name, problem in (
        ("nope", "the policy directory does not exist"),
        ("a.yaml", "the policy directory is not a directory"),
        ("empty", "no *.yaml or *.yml policy files in the directory"),
    ):
        write(tmp_path, {"a.yaml": PROVIDERS})
        write(tmp_path / "empty", {"notes.txt": "hello"})
        assert one_problem(tmp_path / name) == f"{tmp_path / name}: {problem}"


# -------------------------------------------------------------------------------------------- merge


def test_two_files_merge_entry_by_entry(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "a.yaml": """\
                server: {path_prefix: ""}
                providers:
                  openai: {kind: openai, base_url: "https://api.openai.com/v1"}
                models:
                  gpt-5: {destinations: [{provider: anthropic}]}
            """,
            "b.yaml": """\
                server: {listen: "0.0.0.0:9000"}
                providers:
                  anthropic: {kind: anthropic, base_url: "https://api.anthropic.com"}
                models:
                  mini: {destinations: [{provider: openai}]}
            """,
        },
    )
    model = load(tmp_path).model
    assert (model.server.listen, model.server.path_prefix) == ("0.0.0.0:9000", "")
    assert list(model.providers) == ["openai", "anthropic"]
    assert list(model.models) == ["gpt-5", "mini"]


def test_same_entry_in_two_files_names_both(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "a.yaml": PROVIDERS,
            "b.yaml": """\
                server: {listen: "0.0.0.0:9000"}
                providers:
                  openai: {kind: openai, base_url: "http://other/v1"}
            """,
            "c.yaml": """\
                server:
                  listen: "0.0.0.0:9001"
            """,
        },
    )
    assert problems(tmp_path) == [
        f"{tmp_path / 'b.yaml'}:3: providers.openai is also defined at {tmp_path / 'a.yaml'}:2",
        f"{tmp_path / 'c.yaml'}:2: server.listen is also defined at {tmp_path / 'b.yaml'}:1",
    ]


def test_lists_concatenate_in_file_name_order(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "20-second.yaml": "guardrails:\n- {name: two, detect: [pii]}\n- {name: three, detect: [pii]}\n",
            "10-first.yaml": "guardrails:\n  - {name: one, detect: [secrets]}\n",
            "30-third.yml": "guardrails: [{name: four, detect: {keywords: [x]}}]\n",
        },
    )
    loaded = load(tmp_path)
    assert [g.name for g in loaded.model.guardrails] == ["one", "two", "three", "four"]
    assert [f.name for f in loaded.files] == ["10-first.yaml", "20-second.yaml", "30-third.yml"]


def test_list_item_problem_points_into_its_own_file(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "a.yaml": "rate_limits:\n  - {key: user_default, requests_per_minute: 5}\n",
            "b.yaml": "# limits\nrate_limits:\n  - {key: user_default, requests_per_minute: 5}\n"
            "  - {key: user_default, requests_per_minute: 0}\n",
        },
    )
    assert one_problem(tmp_path) == (
        f"{tmp_path / 'b.yaml'}:4: rate_limits.2.requests_per_minute: Input should be greater than 0"
    )


def test_section_that_is_a_map_in_one_file_and_a_list_in_another(tmp_path: Path) -> None:
    write(tmp_path, {"a.yaml": PROVIDERS, "b.yaml": "\nproviders: [openai]\n"})
    assert one_problem(tmp_path) == (
        f"{tmp_path / 'b.yaml'}:2: providers is a list here but a mapping at {tmp_path / 'a.yaml'}:1"
    )


# ----------------------------------------------------------------------------------------- ${VAR}


def test_variables_expand_inside_strings_with_defaults_and_escapes(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "p.yaml": """\
                providers:
                  up:
                    kind: openai
                    base_url: "${SCHEME:-https}://${HOST}/v1"
                    headers:
                      Authorization: "Bearer ${T}"
                      X-Empty: "[${EMPTY:-fallback}]"
                      X-Literal: "$${NOT_A_VAR} and $$ and $x"
                      ${KEY_IS_NOT_EXPANDED}: "v"
                models:
                  m: {destinations: [{provider: up}], timeout_s: "${TIMEOUT:-12.5}"}
            """
        },
    )
    model = load(tmp_path, {"HOST": "llm.internal", "T": "tok", "EMPTY": ""}).model
    provider = model.providers["up"]
    assert provider.base_url == "https://llm.internal/v1"
    assert provider.headers == {
        "Authorization": "Bearer tok",
        "X-Empty": "[fallback]",
        "X-Literal": "${NOT_A_VAR} and $$ and $x",
        "${KEY_IS_NOT_EXPANDED}": "v",
    }
    assert model.models["m"].timeout_s == 12.5


def test_missing_variables_are_reported_at_their_lines(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "p.yaml": """\
                providers:
                  openai:
                    kind: openai
                    base_url: "https://api.openai.com/v1"
                    api_key: "${OPENAI_API_KEY}"
                    headers: {X-A: "${A} ${B:-ok} ${C}", X-Bad: "${not closed"}
            """
        },
    )
    file = tmp_path / "p.yaml"
    assert problems(tmp_path) == [
        f"{file}:5: providers.openai.api_key: environment variable OPENAI_API_KEY is not set"
        " (${OPENAI_API_KEY:-default} gives a default)",
        f"{file}:6: providers.openai.headers.X-A: environment variable A is not set"
        " (${A:-default} gives a default)",
        f"{file}:6: providers.openai.headers.X-A: environment variable C is not set"
        " (${C:-default} gives a default)",
        f"{file}:6: providers.openai.headers.X-Bad: malformed"
        " ${...}: expected ${NAME} or ${NAME:-default} ($${ is a literal ${)",
    ]


# -------------------------------------------------------------------------------- model validation


def test_unknown_nested_key_points_at_its_line(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "a.yaml": PROVIDERS,
            "m.yaml": """\
                models:
                  gpt-5:
                    destinations:
                      - provider: openai
                        model: gpt-5
                        wieght: 3
            """,
        },
    )
    assert one_problem(tmp_path) == (
        f"{tmp_path / 'm.yaml'}:6: models.gpt-5.destinations.0: unknown key 'wieght' (did you mean 'weight'?)"
    )


def test_unknown_top_level_key(tmp_path: Path) -> None:
    write(tmp_path, {"a.yaml": PROVIDERS + "rate_limit:\n  - {key: user_default}\n"})
    assert one_problem(tmp_path).startswith(
        f"{tmp_path / 'a.yaml'}:4: unknown key 'rate_limit' (did you mean 'rate_limits'?)"
    )


def test_bad_types_and_values(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "a.yaml": PROVIDERS,
            "b.yaml": """\
                server: {listen: "localhost"}
                models:
                  gpt-5:
                    destinations:
                      - {provider: openai, weight: -1}
                      - {provider: openai, weight: heavy}
                    timeout_s: [1]
                auth: {mode: maybe}
            """,
        },
    )
    file = tmp_path / "b.yaml"
    assert problems(tmp_path) == [
        f"{file}:1: server.listen: expected HOST:PORT, got 'localhost'",
        f"{file}:5: models.gpt-5.destinations.0.weight: Input should be greater than or equal to 0",
        f"{file}:6: models.gpt-5.destinations.1.weight: Input should be a valid number,"
        " unable to parse string as a number",
        f"{file}:7: models.gpt-5.timeout_s: Input should be a valid number",
        f"{file}:8: auth.mode: Input should be 'keys' or 'none'",
    ]


def test_missing_field_points_at_the_mapping(tmp_path: Path) -> None:
    write(tmp_path, {"a.yaml": "providers:\n  openai:\n    base_url: https://x/v1\n"})
    assert one_problem(tmp_path) == f"{tmp_path / 'a.yaml'}:2: providers.openai: missing required key 'kind'"


def test_model_level_rule_points_at_the_mapping(tmp_path: Path) -> None:
    write(tmp_path, {"a.yaml": "\nproviders:\n  openai: {kind: openai}\n"})
    expected = "providers.openai: a provider of kind openai needs base_url"
    assert one_problem(tmp_path) == f"{tmp_path / 'a.yaml'}:3: {expected}"


def test_guardrail_detect_errors_name_the_data_path(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "g.yaml": """\
                guardrails:
                  - name: a
                    detect:
                      pii: [email, phonenumber]
                  - {name: b, detect: secrets}
            """
        },
    )
    file = tmp_path / "g.yaml"
    found = problems(tmp_path)
    assert found[0].startswith(f"{file}:4: guardrails.0.detect.pii.1: Input should be 'email', 'phone'")
    assert found[1].startswith(f"{file}:5: guardrails.1.detect: detect must be a list of detector names")
    assert len(found) == 2


# --------------------------------------------------------------------------------------------- YAML


def test_yaml_syntax_error_has_its_line(tmp_path: Path) -> None:
    write(tmp_path, {"a.yaml": PROVIDERS, "b.yaml": "# models\nmodels:\n  gpt-5: destinations: []\n"})
    file = tmp_path / "b.yaml"
    assert one_problem(tmp_path) == f"{file}:3: invalid YAML: mapping values are not allowed here"
    write(tmp_path, {"b.yaml": "models:\n  gpt-5: {destinations: [\n\n"})
    assert one_problem(tmp_path).startswith(f"{file}:4: invalid YAML: expected the node content")


def test_duplicate_key_in_one_file(tmp_path: Path) -> None:
    write(tmp_path, {"a.yaml": PROVIDERS + "  openai: {kind: mock}\n"})
    expected = "providers: duplicate key 'openai' (first at line 2)"
    assert one_problem(tmp_path) == f"{tmp_path / 'a.yaml'}:4: {expected}"


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    write(tmp_path, {"a.yaml": "# a list\n- providers\n"})
    assert one_problem(tmp_path) == (
        f"{tmp_path / 'a.yaml'}:2: the top level must be a mapping of sections (server:, …)"
    )


def test_keys_must_be_strings(tmp_path: Path) -> None:
    write(tmp_path, {"a.yaml": PROVIDERS + "tags:\n  stamp: {yes: x}\n"})
    expected = "tags.stamp: key 'yes' is not a string (quote it)"
    assert one_problem(tmp_path) == f"{tmp_path / 'a.yaml'}:5: {expected}"


def test_anchors_and_merge_keys(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "a.yaml": """\
                providers:
                  openai: &openai {kind: openai, base_url: "https://api.openai.com/v1", api_key: "${K}"}
                  openai-eu: {<<: *openai, base_url: "https://eu.api.openai.com/v1"}
                  openai-bad: {<<: *openai, colour: blue}
            """
        },
    )
    assert one_problem(tmp_path, {"K": "k"}) == (
        f"{tmp_path / 'a.yaml'}:4: providers.openai-bad: unknown key 'colour'"
        " (expected one of: api_key, apis, base_url, credentials, headers, kind, stream_usage)"
    )
    (tmp_path / "a.yaml").write_text("\n".join((tmp_path / "a.yaml").read_text().splitlines()[:3]))
    providers = load(tmp_path, {"K": "k"}).model.providers
    assert providers["openai-eu"].base_url == "https://eu.api.openai.com/v1"
    assert providers["openai-eu"].api_key == "k"


# --------------------------------------------------------------------------------- cross references


def test_cross_reference_errors(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "a.yaml": PROVIDERS,
            "b.yaml": f"""\
                auth: {{mode: none, default_principal: nobody}}
                principals:
                  alice: {{groups: [ml], keys: ["{ALICE_KEY}"]}}
                  bot: {{type: service_principal, keys: ["{CI_KEY}", "{ALICE_KEY}"]}}
                models:
                  gpt-5:
                    destinations: [{{provider: opneai}}]
                    fallbacks: [{{provider: echo}}, {{provider: gemini}}]
                  "claude-*": {{destinations: [{{provider: echo}}]}}
                rate_limits:
                  - {{key: user, principal: bob, requests_per_minute: 1}}
                  - {{key: service_principal, principal: alice, requests_per_minute: 1}}
                  - {{key: service_principal, principal: bot, requests_per_minute: 1}}
                  - {{key: user_group, principal: mll, requests_per_minute: 1}}
                  - {{key: user_group, principal: ml, requests_per_minute: 1}}
            """,
        },
    )
    file = tmp_path / "b.yaml"
    assert problems(tmp_path) == [
        f"{file}:1: auth.default_principal: unknown principal 'nobody' (defined: alice, bot)",
        f"{file}:4: principals.bot.keys.1: this key is also assigned to principal 'alice' at {file}:3",
        f"{file}:7: models.gpt-5.destinations.0.provider: unknown provider 'opneai' (did you mean 'openai'?)",
        f"{file}:8: models.gpt-5.fallbacks.1.provider: unknown provider 'gemini' (defined: echo, openai)",
        f"{file}:11: rate_limits.0.principal: unknown principal 'bob' (did you mean 'bot'?)",
        f"{file}:12: rate_limits.1.principal: principal 'alice' is a user, not a service_principal",
        f"{file}:14: rate_limits.3.principal: no principal is in group 'mll' (did you mean 'ml'?)",
    ]


def test_many_problems_across_files_are_reported_together(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "a.yaml": "providers:\n  x: {kind: nope}\n  y: {kind: mock, extra: 1}\n",
            "b.yaml": "models:\n  m: {destinations: []}\nguardrails: [{detect: [secrets]}]\n",
        },
    )
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    found = problems(tmp_path)
    assert [p.split(": ")[0] for p in found] == [f"{a}:2", f"{a}:3", f"{b}:2", f"{b}:3"]
    assert "guardrails.0: missing required key 'name'" in found[3]


def test_unknown_location_falls_back_to_the_directory(tmp_path: Path) -> None:
    # Validation errors on data that no file wrote (none today) are reported against the directory.
    from sidegate.policy.loader import Location, _locator

    locate = _locator({("models",): Location(tmp_path / "a.yaml", 3)}, tmp_path)
    assert str(locate(("models", "x", "destinations"))) == f"{tmp_path / 'a.yaml'}:3"
    assert str(locate(("server", "listen"))) == str(tmp_path)


# ------------------------------------------------------------------------------ digest, fingerprint


def test_digest_changes_with_content_only(tmp_path: Path) -> None:
    write(tmp_path, {"a.yaml": PROVIDERS, "b.yaml": "server: {}\n"})
    first = load(tmp_path).digest
    assert load(tmp_path, {"UNRELATED": "1"}).digest == first
    (tmp_path / "b.yaml").write_text("server: {}\n")  # rewritten, same bytes
    assert load(tmp_path).digest == first
    (tmp_path / "b.yaml").write_text("server: {listen: '0.0.0.0:1'}\n")
    changed = load(tmp_path).digest
    assert changed != first
    (tmp_path / "b.yaml").rename(tmp_path / "c.yaml")
    assert load(tmp_path).digest not in (first, changed)


def test_directory_fingerprint(tmp_path: Path) -> None:
    assert directory_fingerprint(tmp_path / "missing") == ()
    write(tmp_path, {"a.yaml": PROVIDERS, "notes.txt": "x"})
    first = directory_fingerprint(tmp_path)
    assert [name for name, _, _ in first] == ["a.yaml"]
    assert directory_fingerprint(tmp_path) == first
    (tmp_path / "notes.txt").write_text("y")
    assert directory_fingerprint(tmp_path) == first
    stat = (tmp_path / "a.yaml").stat()
    (tmp_path / "a.yaml").write_text(PROVIDERS + "\n")
    os.utime(tmp_path / "a.yaml", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert directory_fingerprint(tmp_path) != first
    write(tmp_path, {"b.yml": ""})
    assert [name for name, _, _ in directory_fingerprint(tmp_path)] == ["a.yaml", "b.yml"]
