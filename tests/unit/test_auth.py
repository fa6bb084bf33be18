"""HTTP API access (streams/api/auth.py, docs/security.md): token configuration, roles by method
and path, the middleware's answers, the worker's start-up rules and `o2c token new`. No broker."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from streams.api.auth import (
    ApiToken,
    AuthConfigError,
    Role,
    auth_middleware,
    bearer,
    decide,
    identify,
    is_open,
    new_token,
    parse_tokens,
    required_role,
    token_digest,
)
from streams.settings import load_settings

REPO = Path(__file__).resolve().parents[2]
SECRETS = {role: f"o2c_test-{role.label}-token" for role in Role}
TOKENS = tuple(ApiToken(role, f"{role.label}-1", token_digest(secret)) for role, secret in SECRETS.items())


def header(role: Role) -> str:
    return f"Bearer {SECRETS[role]}"


# --------------------------------------------------------------------------- configuration


def test_entries_round_trip_and_ignore_blanks_and_spacing():
    config = " , ".join(t.entry() for t in TOKENS) + ",\n"
    assert parse_tokens(config) == TOKENS
    assert parse_tokens("") == () and parse_tokens(" , ") == ()
    upper = f"VIEWER:bob:{TOKENS[0].digest.upper()}"
    assert parse_tokens(upper) == (ApiToken(Role.VIEWER, "bob", TOKENS[0].digest),)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("viewer:bob", "entry 1 is not role:name:sha256-hex"),
        (f"root:bob:{'a' * 64}", "entry 1: the role must be one of viewer, operator, admin"),
        (f"viewer:bob:{'a' * 64},viewer:bo b:{'b' * 64}", "entry 2: name must be"),
        ("viewer:bob:o2c_the-raw-token-pasted-by-mistake", "entry 1: the hash must be 64 hex digits"),
        (f"viewer:bob:{'a' * 64},admin:bob:{'b' * 64}", "names must be unique; repeated: bob"),
    ],
)
def test_bad_entries_are_refused_without_echoing_them(config, message):
    with pytest.raises(AuthConfigError) as refused:
        parse_tokens(config)
    assert message in str(refused.value)
    assert "o2c_the-raw-token" not in str(refused.value) and "a" * 64 not in str(refused.value)


def test_settings_refuse_a_bad_entry_and_keep_it_out_of_the_error():
    with pytest.raises(ValidationError) as refused:
        load_settings(api_tokens="viewer:bob:o2c_secret-token-value")
    assert "o2c_secret-token-value" not in str(refused.value)
    settings = load_settings(api_tokens=",".join(t.entry() for t in TOKENS))
    assert settings.api_token_entries == TOKENS
    assert TOKENS[0].digest not in repr(settings) and TOKENS[0].digest not in repr(TOKENS)


def test_a_new_token_is_random_prefixed_and_matches_its_entry():
    token, entry = new_token(Role.OPERATOR, "alice")
    other, _ = new_token(Role.OPERATOR, "alice")
    assert token.startswith("o2c_") and len(token) >= 40 and token != other
    assert entry == ApiToken(Role.OPERATOR, "alice", hashlib.sha256(token.encode()).hexdigest())
    assert parse_tokens(entry.entry()) == (entry,)
    assert identify((entry,), token) == entry and identify((entry,), other) is None
    with pytest.raises(AuthConfigError):
        new_token(Role.VIEWER, "has:colon")


@pytest.mark.parametrize(
    ("value", "token"),
    [
        (None, None), ("", None), ("Bearer", None), ("Bearer   ", None), ("Basic dXNlcjpwdw==", None),
        ("Bearer abc", "abc"), ("bearer abc", "abc"), ("  Bearer  abc  ", "abc"),
    ],
)
def test_bearer_header(value, token):
    assert bearer(value) == token


# --------------------------------------------------------------------------- who may do what


@pytest.mark.parametrize(
    ("method", "path", "metrics_public", "open_"),
    [
        ("GET", "/health", False, True), ("GET", "/ready", False, True), ("HEAD", "/ready", False, True),
        ("GET", "/openapi.json", False, True), ("GET", "/", False, True),
        ("GET", "/console/app.js", False, True), ("GET", "/console/", False, True),
        ("GET", "/metrics", True, True), ("GET", "/metrics", False, False),
        ("GET", "/console", False, False),  # not the console's prefix
        ("GET", "/console/../orders/SO-1", False, False), ("GET", "/console/./x", False, False),
        ("POST", "/health", False, False), ("POST", "/console/x", False, False),
        ("GET", "/orders/SO-1", True, False), ("GET", "/cases", True, False), ("GET", "/stats/local", True, False),
    ],
)
def test_open_paths(method, path, metrics_public, open_):
    assert is_open(method, path, metrics_public) is open_


@pytest.mark.parametrize(
    ("method", "path", "role"),
    [
        ("GET", "/orders/SO-1", Role.VIEWER), ("GET", "/cases/o.SO-1.HOLD.1/resolve", Role.VIEWER),
        ("HEAD", "/kpis", Role.VIEWER), ("GET", "/sla/breaches/local", Role.VIEWER),
        ("POST", "/cases/o.SO-1.HOLD-CREDIT.1/resolve", Role.OPERATOR),
        ("POST", "/cases/s.SKU-1.NEGATIVE_ATP.2/acknowledge", Role.OPERATOR),
        ("POST", "/cases/x", Role.ADMIN), ("POST", "/cases/a/b/c", Role.ADMIN),
        ("POST", "/orders/SO-1", Role.ADMIN), ("DELETE", "/cases/a/resolve", Role.ADMIN),
        ("PUT", "/dlq/replay", Role.ADMIN),
    ],
)
def test_required_role_by_method_and_path(method, path, role):
    assert required_role(method, path) is role


PATHS = st.sampled_from(["/orders/SO-1", "/cases", "/cases/o.A.B.1/assign", "/kpis", "/metrics", "/x/y", "/health"])
METHODS = st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"])


@given(method=METHODS, path=PATHS, metrics_public=st.booleans(), holder=st.sampled_from([*Role, None]),
       garbage=st.text(max_size=20))
def test_a_request_passes_exactly_when_open_or_its_token_ranks_high_enough(method, path, metrics_public, holder,
                                                                           garbage):
    authorization = header(holder) if holder is not None else (f"Bearer {garbage}" if garbage else None)
    verdict = decide(TOKENS, method, path, authorization, metrics_public)
    if is_open(method, path, metrics_public):
        assert verdict.status == 0
    elif holder is None:
        assert verdict.status == 401
        # the answer never echoes what was sent: one of the two fixed messages, whatever the token
        assert verdict.message in {
            "authentication required: send Authorization: Bearer <token>", "unknown or revoked API token",
        }
    elif holder >= required_role(method, path):
        assert verdict.status == 0 and verdict.token is not None and verdict.token.role is holder
    else:
        assert verdict.status == 403 and verdict.needed is required_role(method, path)
    assert all(secret not in verdict.message for secret in SECRETS.values())


# --------------------------------------------------------------------------- the middleware


async def ask(metrics_public: bool, requests: list[tuple[str, str, str | None]]) -> list[tuple[int, dict, dict]]:
    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application(middlewares=[auth_middleware(TOKENS, metrics_public)])
    app.router.add_route("*", "/{tail:.*}", ok)
    answers = []
    async with TestClient(TestServer(app)) as client:
        for method, path, authorization in requests:
            headers = {"Authorization": authorization} if authorization else {}
            async with client.request(method, path, headers=headers) as reply:
                answers.append((reply.status, dict(reply.headers), await reply.json()))
    return answers


def test_middleware_answers_401_and_403_as_json_and_logs_no_secret(caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "Bearer o2c_wrong-secret-value"
    answers = asyncio.run(ask(False, [
        ("GET", "/orders/SO-1", None),
        ("GET", "/orders/SO-1", wrong),
        ("GET", "/orders/SO-1", header(Role.VIEWER)),
        ("POST", "/cases/o.SO-1.HOLD-CREDIT.1/resolve", header(Role.VIEWER)),
        ("POST", "/cases/o.SO-1.HOLD-CREDIT.1/resolve", header(Role.OPERATOR)),
        ("GET", "/metrics", None),
        ("GET", "/health", None),
    ]))
    statuses = [status for status, _, _ in answers]
    assert statuses == [401, 401, 200, 403, 200, 401, 200]
    for _status, headers, body in answers[:2]:
        assert headers["WWW-Authenticate"].startswith("Bearer") and "error" in body
    assert answers[3][2] == {
        "error": "POST /cases/o.SO-1.HOLD-CREDIT.1/resolve needs the operator role; this token is a viewer",
        "role": "viewer", "required_role": "operator",
    }
    text = caplog.text + repr([a[2] for a in answers])
    assert "HTTP 403" in caplog.text and "viewer-1" in caplog.text
    for secret in [*SECRETS.values(), "o2c_wrong-secret-value", *(t.digest for t in TOKENS)]:
        assert secret not in text


# --------------------------------------------------------------------------- the worker's start-up rules


def test_auth_off_warns_loudly_and_auth_on_without_tokens_refuses_to_start(tmp_path, caplog):
    from streams.app import check_auth, middlewares

    caplog.set_level(logging.INFO)
    assert len(middlewares(load_settings(data_dir=tmp_path, auth_enabled=False, web_port=7001))) == 1
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "HTTP API authentication is OFF" in warning.getMessage() and "port 7001" in warning.getMessage()
    with pytest.raises(AuthConfigError, match="O2C_API_TOKENS holds no token"):
        check_auth(load_settings(data_dir=tmp_path))
    configured = load_settings(data_dir=tmp_path, api_tokens=TOKENS[0].entry())
    check_auth(configured)
    assert len(middlewares(configured)) == 2
    assert TOKENS[0].digest not in caplog.text


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("O2C_")}
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], capture_output=True, text=True, cwd=REPO,
                          env={**base, "PYTHONPATH": str(REPO), **env}, timeout=60)


def test_token_new_prints_a_token_once_and_an_entry_a_worker_accepts():
    done = run("token", "new", "--role", "operator", "--name", "alice")
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if not line.startswith("#")]
    token, entry = lines
    [parsed] = parse_tokens(entry)
    assert (parsed.role, parsed.name) == (Role.OPERATOR, "alice")
    assert identify((parsed,), token) == parsed


def test_worker_refuses_to_start_with_auth_on_and_no_token():
    done = run("worker", O2C_BOOTSTRAP_SERVERS="127.0.0.1:1")
    assert done.returncode == 1
    assert "O2C_API_TOKENS holds no token" in done.stderr and "Kafka" not in done.stderr
