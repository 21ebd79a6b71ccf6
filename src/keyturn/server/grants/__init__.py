"""One module per grant type; each turns a request into a `TokenDecision` or an error.

The list of grants is `keyturn.server.grants.registry.GRANTS`.
"""

from __future__ import annotations

from keyturn.server.grants.registry import HANDLERS, GrantHandler

__all__ = ["HANDLERS", "GrantHandler"]
