"""Reading a JWT's claims without verifying it: for hints and lookups only.

The client reads ``exp`` to know when to refresh; the server reads ``jti`` to
find a token's record, then checks the token against it. Neither trusts the
claims for anything else, so no JOSE library is needed here.
"""

from __future__ import annotations

import base64
import json
from typing import Any


def unverified_claims(token: str) -> dict[str, Any] | None:
    """The claims of a compact JWS, or ``None`` if it does not parse as one."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, RecursionError):  # not base64url, ASCII, UTF-8 or JSON; too deep
        return None
    return claims if isinstance(claims, dict) else None


def unverified_jti(token: str) -> str | None:
    """The ``jti`` a compact JWS claims to have, or ``None``; the signature is not checked.

    Only for finding a token's record: the caller must then check the token
    against it (the server's ``TokenIssuer.recorded_as``: the recorded keyed
    hash and the signature), which a token with a copied ``jti`` and anything
    else altered fails.
    """
    claims = unverified_claims(token)
    jti = claims.get("jti") if claims is not None else None
    return jti if isinstance(jti, str) and jti else None
