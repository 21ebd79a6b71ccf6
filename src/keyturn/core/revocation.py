"""The deny-list contract between the server, which writes it, and the guard, which reads it.

When an access token is revoked before its ``exp``, the server sets

    {namespace}revoked:{jti} = "1"    with a TTL that ends at the token's ``exp``

in a shared store (Redis), and a guard that opted in asks whether the key
exists. ``namespace`` is ``keyturn:`` unless the server's
``KEYTURN_REDIS_PREFIX`` says otherwise; both sides build the key here.
"""

from __future__ import annotations

__all__ = ["DEFAULT_NAMESPACE", "REVOKED_KEY_PREFIX", "revoked_key", "revoked_key_prefix"]

#: The server's default Redis key prefix (``KEYTURN_REDIS_PREFIX``).
DEFAULT_NAMESPACE = "keyturn:"


def revoked_key_prefix(namespace: str = DEFAULT_NAMESPACE) -> str:
    """What every deny-list key of ``namespace`` starts with."""
    return f"{namespace}revoked:"


#: The deny-list key prefix under the default namespace: ``keyturn:revoked:``.
REVOKED_KEY_PREFIX = revoked_key_prefix()


def revoked_key(jti: str, prefix: str = REVOKED_KEY_PREFIX) -> str:
    """The key that marks ``jti`` as revoked; ``prefix`` from `revoked_key_prefix`."""
    return f"{prefix}{jti}"
