"""Tokens a real bot already has: Entra ID application tokens for Graph (RS256, another issuer), refused (401) unless
the server runs in the local foreign-token mode, where they are accepted without their signature being verified but
with their lifetime, audience and roles checked, and delegated ones are refused (403) as Graph does."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from mediamute.api.auth import FOREIGN_WARNING
from mediamute.settings import ServerSettings
from mediamute.tokens import ROLE_INITIATE, ROLE_JOIN_GROUP_CALL, SigningKey

from .helpers import CALLS, InProcessMediamute, assert_graph_error, create_call, join_without_media

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
ENTRA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
"""Stands for Entra ID's signing key, which mediamute never sees."""


def entra_token(lifetime: float = 3600.0, not_before: float = 0.0, **claims: object) -> str:
    """An application token as Entra ID's client-credentials flow issues it for Graph (v1 shape)."""
    now = int(time.time())
    body: dict[str, object] = {
        "aud": "https://graph.microsoft.com",
        "iss": f"https://sts.windows.net/{TENANT}/",
        "iat": now,
        "nbf": now + int(not_before),
        "exp": now + int(lifetime),
        "appid": "d3590ed6-52b3-4102-aeff-aad2292ab01c",
        "idtyp": "app",
        "tid": TENANT,
        "roles": [ROLE_INITIATE],
    }
    body.update(claims)
    return jwt.encode({k: v for k, v in body.items() if v is not None}, ENTRA_KEY, algorithm="RS256", headers={"kid": "entra"})


def hand_made(claims: dict[str, object]) -> str:
    """A JWT with any claims (PyJWT will not encode some odd ones), signed with bytes nobody checks."""
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


@pytest.fixture
async def local_mode() -> AsyncIterator[InProcessMediamute]:
    settings = ServerSettings(log_level="warning", ephemeral_key=True, accept_foreign_tokens=True)
    async with InProcessMediamute(settings) as app:
        yield app


async def create(app: InProcessMediamute, token: str):
    async with app.client(token) as client:
        return await client.post(CALLS, json={})


async def test_a_foreign_token_is_refused_by_default(api):
    error = assert_graph_error(await create(api, entra_token()), 401, code="InvalidAuthenticationToken")
    assert "signature cannot be verified" in error["message"] and "--accept-foreign-tokens" in error["message"]


@pytest.mark.parametrize(
    "claims",
    [
        {},
        {"roles": ["calls.initiate.all"]},  # role values compared case-insensitively
        {"roles": ["Calls.InitiateGroupCalls.All"]},  # the seed page's plural spelling
        {"aud": "00000003-0000-0000-c000-000000000000"},  # a v2 token names Graph by its application id
    ],
    ids=["documented role", "other case", "seed spelling", "v2 audience"],
)
async def test_the_local_mode_accepts_a_foreign_application_token_and_says_so(local_mode, claims):
    response = await create(local_mode, entra_token(**claims))
    assert response.status_code == 201, response.text
    assert response.headers["Mediamute-Warning"] == FOREIGN_WARNING
    async with local_mode.client(local_mode.signing_key.app_token([ROLE_INITIATE])) as ours:
        mine = await ours.post(CALLS, json={})
    assert mine.status_code == 201 and "Mediamute-Warning" not in mine.headers  # our own tokens: no warning


@pytest.mark.parametrize(
    "token, status, message",
    [
        (lambda: entra_token(roles=None, scp="Calls.Initiate.All", idtyp="user"), 403, "Delegated permissions are not supported"),
        (lambda: entra_token(roles=[ROLE_JOIN_GROUP_CALL]), 403, "requires one of"),
        (lambda: entra_token(lifetime=-60), 401, "expired"),
        (lambda: entra_token(not_before=600), 401, "not yet valid"),
        (lambda: entra_token(aud="api://another-api"), 401, "audience"),
        (lambda: entra_token(roles="Calls.Initiate.All"), 401, "list of strings"),
        (lambda: entra_token(exp=None), 401, "exp"),
        (lambda: hand_made({"iss": ["not", "a", "string"], "aud": "https://graph.microsoft.com",
                            "exp": int(time.time()) + 60, "roles": [ROLE_JOIN_GROUP_CALL]}), 403, "requires one of"),
        (lambda: jwt.encode({"iss": "https://sts.windows.net/x/", "aud": "https://graph.microsoft.com",
                             "exp": int(time.time()) + 60, "roles": [ROLE_INITIATE]}, None, algorithm="none"), 401, "unsigned"),
        (lambda: "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln", 401, "validation failure"),
        (lambda: SigningKey.generate().app_token([ROLE_INITIATE]), 401, "signature"),  # mediamute's issuer, another key
    ],
    ids=["delegated", "wrong role", "expired", "not yet valid", "other audience", "roles not a list", "no expiry",
         "odd issuer",
         "alg none", "malformed", "forged mediamute token"],
)
async def test_the_local_mode_still_checks_what_it_can(local_mode, token, status, message):
    error = assert_graph_error(await create(local_mode, token()), status, message_part=message)
    assert error["code"] == ("Authorization_RequestDenied" if status == 403 else "InvalidAuthenticationToken")


async def test_a_foreign_token_only_ever_acts_as_an_application(local_mode):
    async with local_mode.client(local_mode.signing_key.app_token([ROLE_INITIATE])) as ours:
        call_id = await create_call(ours)
    participant = join_without_media(local_mode.registry.get(call_id), "Bob")
    # claims that would make one of our tokens a participant's session token change nothing for a foreign one
    token = entra_token(**{"mm:kind": "session", "mm:call": call_id, "sub": participant.id})
    async with local_mode.client(token) as client:
        response = await client.post(f"/ext/calls/{call_id}/participants/{participant.id}/selfUnmute")
    assert_graph_error(response, 403, message_part="session token")
