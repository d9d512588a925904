"""Who is calling: the App Service Authentication ("Easy Auth") client principal.

Easy Auth validates the caller's token and passes the result to the app as the
`X-MS-CLIENT-PRINCIPAL` header: base64 of `{"auth_typ", "name_typ", "role_typ", "claims": [{"typ",
"val"}]}`. Clients cannot forge it in Azure while App Service Authentication is on (the platform strips
it from incoming requests); with it off the API refuses every caller (see `Settings.trust_client_principal`).
The app's two roles are app roles of its Entra ID registration.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from . import boundedjson

PRINCIPAL_HEADER = "X-MS-CLIENT-PRINCIPAL"
PRINCIPAL_NAME_HEADER = "X-MS-CLIENT-PRINCIPAL-NAME"
ADMIN_ROLE = "Exports.Admin"
CONTRIBUTOR_ROLE = "Exports.Contributor"

# Claim types a role can come in: Entra ID v2 tokens say "roles"; the principal names its own in role_typ.
_ROLE_CLAIM_TYPES = ("roles", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role")
# Claim types naming the caller, best first; app-only callers (client credentials) only have an object id.
_NAME_CLAIM_TYPES = (
    "preferred_username",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
    "name",
    "http://schemas.microsoft.com/identity/claims/objectidentifier",
    "oid",
)
_MAX_HEADER_CHARS = 32 * 1024
MAX_IDENTITY_CHARS = 256
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")  # control characters, lone surrogates


class PrincipalError(ValueError):
    """The principal header is present but unreadable; the message says what is wrong with it."""


@dataclass(frozen=True)
class Caller:
    identity: str
    roles: frozenset[str]

    @property
    def is_admin(self) -> bool:
        return ADMIN_ROLE in self.roles

    @property
    def is_member(self) -> bool:
        """Admin or contributor: may use the API at all."""
        return self.is_admin or CONTRIBUTOR_ROLE in self.roles


def encode_principal(identity: str, roles: Iterable[str], *, auth_typ: str = "aad") -> str:
    """A principal header value as Easy Auth builds it (the dev host and tests send these)."""
    claims = [{"typ": "preferred_username", "val": identity}]
    claims += [{"typ": "roles", "val": role} for role in roles]
    principal = {"auth_typ": auth_typ, "name_typ": "preferred_username", "role_typ": "roles", "claims": claims}
    return base64.b64encode(json.dumps(principal).encode("utf-8")).decode("ascii")


def parse_principal(value: str, *, name_header: str | None = None) -> Caller:
    """The caller a principal header describes; PrincipalError when it cannot be read."""
    principal = _decode(value)
    claims = _claims(principal)
    role_types = set(_ROLE_CLAIM_TYPES)
    if isinstance(principal.get("role_typ"), str):
        role_types.add(principal["role_typ"])
    roles = frozenset(val for typ, val in claims if typ in role_types)
    identity = _identity(principal, claims) or (name_header or "").strip()
    if not identity:
        raise PrincipalError(f"{PRINCIPAL_HEADER} has no claim naming the caller (e.g. preferred_username or oid)")
    # The identity is logged and stored as createdBy: bounded, one line, valid Unicode.
    if len(identity) > MAX_IDENTITY_CHARS or _UNPRINTABLE.search(identity):
        raise PrincipalError(f"{PRINCIPAL_HEADER} names the caller with more than {MAX_IDENTITY_CHARS} characters "
                             "or with control characters")
    return Caller(identity=identity, roles=roles)


def caller_from_headers(headers: Mapping[str, str]) -> Caller | None:
    """The caller of a request (headers looked up case-insensitively by the mapping), None if anonymous."""
    value = headers.get(PRINCIPAL_HEADER)
    if value is None or not value.strip():
        return None
    return parse_principal(value, name_header=headers.get(PRINCIPAL_NAME_HEADER))


def _decode(value: str) -> dict[str, Any]:
    if len(value) > _MAX_HEADER_CHARS:
        raise PrincipalError(f"{PRINCIPAL_HEADER} is longer than {_MAX_HEADER_CHARS} characters")
    text = value.strip()
    try:
        # Easy Auth sends standard base64; accept the URL-safe alphabet and missing padding as well.
        raw = base64.b64decode(text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise PrincipalError(f"{PRINCIPAL_HEADER} is not base64") from None
    try:
        principal = boundedjson.loads(raw)
    except boundedjson.JsonSyntaxError as error:  # not UTF-8, not JSON, or nested too deep
        raise PrincipalError(f"{PRINCIPAL_HEADER} is base64 but not JSON: it {error}") from None
    except boundedjson.JsonValueError as error:  # numbers too long or too large, lone surrogates
        raise PrincipalError(f"{PRINCIPAL_HEADER} {error}") from None
    if not isinstance(principal, dict):
        raise PrincipalError(f"{PRINCIPAL_HEADER} must be a JSON object with a 'claims' list")
    return principal


def _claims(principal: dict[str, Any]) -> list[tuple[str, str]]:
    claims = principal.get("claims")
    if not isinstance(claims, list):
        raise PrincipalError(f"{PRINCIPAL_HEADER} has no 'claims' list")
    pairs = []
    for index, claim in enumerate(claims):
        if not (isinstance(claim, dict) and isinstance(claim.get("typ"), str) and isinstance(claim.get("val"), str)):
            raise PrincipalError(f"{PRINCIPAL_HEADER}: claims[{index}] must be an object with string 'typ' and 'val'")
        pairs.append((claim["typ"], claim["val"]))
    return pairs


def _identity(principal: dict[str, Any], claims: list[tuple[str, str]]) -> str:
    name_types = list(_NAME_CLAIM_TYPES)
    if isinstance(principal.get("name_typ"), str):
        name_types.insert(0, principal["name_typ"])
    by_type: dict[str, str] = {}
    for typ, val in claims:
        by_type.setdefault(typ, val)
    for typ in name_types:
        if by_type.get(typ, "").strip():
            return by_type[typ].strip()
    return ""
