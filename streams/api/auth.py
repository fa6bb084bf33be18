"""Who may ask the HTTP API what (issue 17 point 2, docs/security.md): bearer tokens with a role.

Tokens are kept as SHA-256 hashes at rest (`O2C_API_TOKENS`): a token is 32 random bytes, so a
plain hash is as strong as a slow one and costs nothing per request. The pure parts (parsing,
hashing, which role a method and path need) are plain functions; `auth_middleware` is the shell
that answers 401/403 before a view runs. Nothing here logs or returns a token or a hash.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from aiohttp import web as aioweb

log = logging.getLogger("o2c.auth")

TOKEN_PREFIX = "o2c_"  # recognisable in a secret scanner or a leaked paste
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
DIGEST_PATTERN = re.compile(r"^[0-9a-f]{64}$")
READS = frozenset({"GET", "HEAD", "OPTIONS"})
CASE_ACTION = re.compile(r"^/cases/[^/]+/[^/]+$")


class Role(IntEnum):
    """Ranked: a higher role may do everything a lower one may."""

    VIEWER = 1  # every read
    OPERATOR = 2  # + case actions (POST /cases/{id}/{verb})
    ADMIN = 3  # + administrative endpoints: none exist yet, so any other write

    @classmethod
    def named(cls, name: str) -> Role:
        try:
            return cls[name.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown role {name.strip()!r}; roles: {', '.join(ROLE_NAMES)}") from None

    @property
    def label(self) -> str:
        return self.name.lower()


ROLE_NAMES = tuple(role.label for role in Role)


class AuthConfigError(ValueError):
    """Token settings a worker cannot start with; the message names the entry, never its hash."""


@dataclass(frozen=True)
class ApiToken:
    """One configured token: who holds it, what it may do, and the SHA-256 of the token."""

    role: Role
    name: str
    digest: str

    def entry(self) -> str:
        """The `O2C_API_TOKENS` entry for this token."""
        return f"{self.role.label}:{self.name}:{self.digest}"

    def __repr__(self) -> str:  # a repr in a log or traceback shows no hash
        return f"ApiToken(role={self.role.label}, name={self.name!r})"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(role: Role, name: str) -> tuple[str, ApiToken]:
    """A fresh random token and its configuration entry; the token is shown once, never stored."""
    if not NAME_PATTERN.match(name):
        raise AuthConfigError(f"token name {name!r} must be 1-64 letters, digits and . _ @ -")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, ApiToken(role, name, token_digest(token))


def parse_tokens(config: str) -> tuple[ApiToken, ...]:
    """`role:name:sha256hex` entries, comma (or newline) separated; blank entries ignored."""
    tokens: list[ApiToken] = []
    entries = [e.strip() for e in re.split(r"[,\n]", config) if e.strip()]
    for number, entry in enumerate(entries, start=1):
        parts = entry.split(":")
        if len(parts) != 3:
            raise AuthConfigError(f"API token entry {number} is not role:name:sha256-hex")
        role_name, name, digest = (p.strip() for p in parts)
        if role_name.upper() not in Role.__members__:  # no entry text in messages: it may hold a token
            raise AuthConfigError(f"API token entry {number}: the role must be one of {', '.join(ROLE_NAMES)}")
        role = Role[role_name.upper()]
        if not NAME_PATTERN.match(name):
            raise AuthConfigError(f"API token entry {number}: name must be 1-64 letters, digits and . _ @ -")
        if not DIGEST_PATTERN.match(digest.lower()):
            raise AuthConfigError(
                f"API token entry {number}: the hash must be 64 hex digits (SHA-256 of the token, "
                "from `o2c token new`), not the token itself"
            )
        tokens.append(ApiToken(role, name, digest.lower()))
    names = [t.name for t in tokens]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:  # names are what logs say of a token: one name, one holder
        raise AuthConfigError(f"API token names must be unique; repeated: {', '.join(duplicates)}")
    return tuple(tokens)


def bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def identify(tokens: Iterable[ApiToken], presented: str) -> ApiToken | None:
    """The configured token whose hash matches; every entry is compared in constant time."""
    digest = token_digest(presented)
    found = None
    for token in tokens:
        if hmac.compare_digest(token.digest, digest):
            found = token
    return found


def is_open(method: str, path: str, metrics_public: bool) -> bool:
    """Paths anyone may read: probes, the API description, the console's static files (the page
    asks for a token itself) and, by setting, Prometheus metrics."""
    if method not in READS or "/.." in path or "/./" in path:
        return False
    if path in ("/health", "/ready", "/openapi.json", "/") or path.startswith("/console/"):
        return True
    return metrics_public and path == "/metrics"


def required_role(method: str, path: str) -> Role:
    """Reads need a viewer, case actions an operator, any other write an admin (deny by default:
    an endpoint added later is administrative until said otherwise)."""
    if method in READS:
        return Role.VIEWER
    if method == "POST" and CASE_ACTION.match(path):
        return Role.OPERATOR
    return Role.ADMIN


@dataclass(frozen=True)
class Verdict:
    """What the middleware does with a request: pass it on (status 0), or answer 401/403."""

    status: int
    message: str = ""
    token: ApiToken | None = None
    needed: Role | None = None


def decide(tokens: tuple[ApiToken, ...], method: str, path: str, authorization: str | None,
           metrics_public: bool) -> Verdict:
    if is_open(method, path, metrics_public):
        return Verdict(0)
    presented = bearer(authorization)
    if presented is None:
        return Verdict(401, "authentication required: send Authorization: Bearer <token>")
    token = identify(tokens, presented)
    if token is None:
        return Verdict(401, "unknown or revoked API token")
    needed = required_role(method, path)
    if token.role < needed:
        return Verdict(403, f"{method} {path} needs the {needed.label} role; this token is a {token.role.label}",
                       token, needed)
    return Verdict(0, token=token)


Handler = Callable[[aioweb.Request], Awaitable[aioweb.StreamResponse]]


def auth_middleware(tokens: tuple[ApiToken, ...], metrics_public: bool) -> Any:
    """The aiohttp middleware enforcing `decide` on every request, routed ones included (a
    worker forwards the caller's Authorization header, streams/api/web.py)."""

    @aioweb.middleware
    async def authenticate(request: aioweb.Request, handler: Handler) -> aioweb.StreamResponse:
        verdict = decide(tokens, request.method, request.path, request.headers.get("Authorization"),
                         metrics_public)
        if verdict.status == 0:
            return await handler(request)
        who = f" (token {verdict.token.name!r})" if verdict.token else ""
        log.info("HTTP %d for %s %s from %s%s", verdict.status, request.method, request.path,
                 request.remote, who)
        if verdict.status == 401:
            return aioweb.json_response({"error": verdict.message}, status=401,
                                        headers={"WWW-Authenticate": 'Bearer realm="o2c"'})
        assert verdict.token is not None and verdict.needed is not None
        return aioweb.json_response(
            {"error": verdict.message, "role": verdict.token.role.label, "required_role": verdict.needed.label},
            status=403,
        )

    return authenticate
