"""Signing keys and JWTs: application tokens carrying Graph roles, per-call join tokens, per-participant session
tokens, and the signature on callback notifications.

One EC P-256 key signs everything (ES256). It lives in a key file (created on first use, mode 0600) so that
`mediamute token` can mint tokens a separately running `mediamute serve` accepts, and receivers can verify
callbacks with the public key alone (served as a JWKS at /ext/keys).
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

ISSUER = "mediamute"
GRAPH_AUDIENCE = "https://graph.microsoft.com"
GRAPH_AUDIENCES = (GRAPH_AUDIENCE, GRAPH_AUDIENCE + "/", "00000003-0000-0000-c000-000000000000")
"""The audiences Entra ID writes in a token for Microsoft Graph (v1 tokens: its URL; v2: Graph's application id)."""
ALGORITHM = "ES256"
KEY_FILE_ENV = "MEDIAMUTE_KEY_FILE"

# Graph application permissions that matter to mediamute, spelled as Entra ID issues them and Graph's current
# documentation lists them (singular "GroupCall"). What `mediamute token` mints.
ROLE_JOIN_GROUP_CALL = "Calls.JoinGroupCall.All"
ROLE_JOIN_GROUP_CALL_AS_GUEST = "Calls.JoinGroupCallAsGuest.All"
ROLE_INITIATE = "Calls.Initiate.All"
ROLE_INITIATE_GROUP_CALL = "Calls.InitiateGroupCall.All"
ROLE_ACCESS_MEDIA = "Calls.AccessMedia.All"
ALL_CALL_ROLES = (
    ROLE_INITIATE,
    ROLE_INITIATE_GROUP_CALL,
    ROLE_JOIN_GROUP_CALL,
    ROLE_JOIN_GROUP_CALL_AS_GUEST,
    ROLE_ACCESS_MEDIA,
)
SEED_ROLE_SPELLINGS = {
    "Calls.JoinGroupCalls.All": ROLE_JOIN_GROUP_CALL,
    "Calls.JoinGroupCallsasGuest.All": ROLE_JOIN_GROUP_CALL_AS_GUEST,
    "Calls.InitiateGroupCalls.All": ROLE_INITIATE_GROUP_CALL,
}
"""The plural spellings of the page mediamute started from (seeds/001_…): accepted as the same roles."""
_CANONICAL = {role.lower(): role for role in ALL_CALL_ROLES} | {
    alias.lower(): role for alias, role in SEED_ROLE_SPELLINGS.items()
}


def canonical_role(role: str) -> str:
    """The documented spelling of a role, compared case-insensitively (Entra ID role values are case-insensitive);
    a seed-page plural spelling maps to its singular role; an unknown role comes back lower-cased."""
    return _CANONICAL.get(role.lower(), role.lower())


TokenKind = Literal["app", "join", "session"]


def default_key_file() -> Path:
    env = os.environ.get(KEY_FILE_ENV)
    if env:
        return Path(env)
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return state / "mediamute" / "signing-key.pem"


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8 or 1, "big").rjust(32, b"\0")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass
class SigningKey:
    """The server's EC key: signs tokens and callbacks, verifies tokens."""

    private_key: ec.EllipticCurvePrivateKey
    key_id: str = field(default="")

    def __post_init__(self) -> None:
        if not self.key_id:
            der = self.private_key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            self.key_id = hashlib.sha256(der).hexdigest()[:16]

    @classmethod
    def generate(cls) -> "SigningKey":
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def load_or_create(cls, path: Path | None = None) -> "SigningKey":
        path = path or default_key_file()
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise ValueError(f"{path} does not hold an EC private key")
            return cls(key)
        key = cls.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = key.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        return key

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self.private_key.public_key()

    def jwks(self) -> dict[str, Any]:
        numbers = self.public_key.public_numbers()
        return {
            "keys": [
                {
                    "kty": "EC",
                    "crv": "P-256",
                    "alg": ALGORITHM,
                    "use": "sig",
                    "kid": self.key_id,
                    "x": _b64url_uint(numbers.x),
                    "y": _b64url_uint(numbers.y),
                }
            ]
        }

    # minting ------------------------------------------------------------------------------------------------
    def sign(self, claims: dict[str, Any], lifetime: float = 3600.0) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "iat": now, "nbf": now, "exp": now + int(lifetime), "jti": str(uuid.uuid4())}
        body.update(claims)
        return jwt.encode(body, self.private_key, algorithm=ALGORITHM, headers={"kid": self.key_id})

    def app_token(self, roles: list[str], lifetime: float = 24 * 3600.0, app_id: str = "mediamute-dev") -> str:
        """A token like one an app gets from the client-credentials flow: Graph application roles."""
        return self.sign(
            {"aud": GRAPH_AUDIENCE, "roles": list(roles), "appid": app_id, "idtyp": "app", "mm:kind": "app"},
            lifetime,
        )

    def delegated_token(self, scopes: str = "Calls.Initiate.All", lifetime: float = 3600.0) -> str:
        """A user (delegated) token: `scp`, no `roles`. The calls API refuses these, as Graph does."""
        return self.sign({"aud": GRAPH_AUDIENCE, "scp": scopes, "idtyp": "user", "mm:kind": "app"}, lifetime)

    def join_token(self, call_id: str, lifetime: float = 24 * 3600.0) -> str:
        """Lets its bearer join one call by WHIP (and watch its event stream), nothing else."""
        return self.sign({"aud": "mediamute:whip", "mm:kind": "join", "mm:call": call_id}, lifetime)

    def session_token(self, call_id: str, participant_id: str, lifetime: float = 24 * 3600.0) -> str:
        """Acts for one participant: leave, self-mute, self-unmute, watch the call's events."""
        return self.sign(
            {"aud": "mediamute:whip", "mm:kind": "session", "mm:call": call_id, "sub": participant_id}, lifetime
        )

    def sign_callback(self, body: bytes, callback_uri: str, lifetime: float = 300.0) -> str:
        """A bearer token for a callback POST, binding the exact body by its SHA-256."""
        return self.sign({"aud": callback_uri, "mm:kind": "callback", "bodySha256": hashlib.sha256(body).hexdigest()}, lifetime)

    # checking -----------------------------------------------------------------------------------------------
    def decode(self, token: str, audiences: tuple[str, ...]) -> dict[str, Any]:
        """Verify signature, expiry and audience; raises jwt.InvalidTokenError (with a reason) otherwise."""
        return jwt.decode(
            token,
            self.public_key,
            algorithms=[ALGORITHM],
            audience=list(audiences),
            issuer=ISSUER,
            options={"require": ["exp", "iat", "iss", "aud"]},
        )


def token_issuer(token: str) -> str | None:
    """The `iss` claim of a well-formed JWT, read without checking anything else (to choose how to check it);
    raises jwt.InvalidTokenError if the token is not a JWT at all."""
    issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
    return issuer if isinstance(issuer, str) else None


def read_foreign_token(token: str, audiences: tuple[str, ...] = GRAPH_AUDIENCES) -> dict[str, Any]:
    """The claims of another issuer's access token (Entra ID's, typically), for the local mode that accepts them:
    its signature is NOT verified (mediamute has no way to fetch that issuer's keys, and a local simulator should
    not), but it must be a signed JWT (not `alg: none`) for Graph, with an issuer, and within its lifetime (`exp`,
    `nbf`). Raises jwt.InvalidTokenError (with the reason) otherwise."""
    header = jwt.get_unverified_header(token)
    algorithm = str(header.get("alg") or "none")
    if algorithm.lower() == "none" or not token.rsplit(".", 1)[-1]:
        raise jwt.InvalidTokenError("an unsigned token (alg none) is not an access token")
    return jwt.decode(
        token,
        options={
            "verify_signature": False,
            "verify_exp": True,
            "verify_nbf": True,
            "verify_aud": True,
            "require": ["exp", "iss", "aud"],
        },
        audience=list(audiences),
    )


def verify_callback(token: str, body: bytes, callback_uri: str, jwks_or_key: dict[str, Any] | ec.EllipticCurvePublicKey) -> dict[str, Any]:
    """What a callback receiver does: check the bearer token's signature and that it binds this exact body."""
    if isinstance(jwks_or_key, dict):
        key = jwt.PyJWK.from_dict(jwks_or_key["keys"][0]).key
    else:
        key = jwks_or_key
    claims = jwt.decode(token, key, algorithms=[ALGORITHM], audience=callback_uri, issuer=ISSUER)
    if claims.get("bodySha256") != hashlib.sha256(body).hexdigest():
        raise jwt.InvalidTokenError("the callback body does not match the signed hash")
    return claims

