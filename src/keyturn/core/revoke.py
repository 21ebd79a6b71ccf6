"""What an RFC 7009 revocation by the client did: the outcome per token, and when it failed.

A logout must never leave the user logged in, so the manager forgets its tokens
(memory and store) *before* it asks the provider, and the provider's answer is
reported rather than allowed to stop that. The refresh token is revoked first:
revoking it ends the grant (§2.1), after which a failed access-token
revocation is not fatal. The one answer that is never a failure is
``unsupported_token_type`` for an access token (§2.2.1): the provider cannot
revoke that kind (node-oidc-provider's JWT access tokens, for one), so the token
lives until it expires and there is nothing more a client can do.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from keyturn.core.errors import KeyturnError

__all__ = ["RevocationError", "RevocationResult", "RevocationStatus", "TokenRevocation"]


class RevocationStatus(StrEnum):
    REVOKED = "revoked"
    """The provider answered 200: revoked, or already unknown to it (§2.2)."""
    UNSUPPORTED = "unsupported"
    """``unsupported_token_type``: the provider cannot revoke this kind of token."""
    FAILED = "failed"
    """Any other error, the network included: see ``error``."""
    SKIPPED = "skipped"
    """Not sent (``revoke(refresh_only=True)``)."""


@dataclass(frozen=True, slots=True)
class TokenRevocation:
    status: RevocationStatus
    error: KeyturnError | None = None


@dataclass(frozen=True, slots=True)
class RevocationResult:
    """Per token what the provider did; ``None`` where the client held no such token.

    The tokens were forgotten locally whatever the fields say.
    """

    refresh_token: TokenRevocation | None = None
    access_token: TokenRevocation | None = None

    @property
    def grant_ended(self) -> bool:
        """The provider confirmed the end of the grant: its refresh token, else its only token."""
        if self.refresh_token is not None:
            return self.refresh_token.status is RevocationStatus.REVOKED
        return (
            self.access_token is not None and self.access_token.status is RevocationStatus.REVOKED
        )

    def fatal_error(self) -> KeyturnError | None:
        """The error that leaves the grant possibly alive at the provider, if any.

        A failed refresh-token revocation; or, when there was no refresh token,
        a failed access-token revocation. Not ``unsupported_token_type`` for an
        access token, and nothing at all once the refresh token is revoked.
        """
        if self.refresh_token is not None:
            if self.refresh_token.status is RevocationStatus.REVOKED:
                return None
            return self.refresh_token.error
        if self.access_token is not None and self.access_token.status is RevocationStatus.FAILED:
            return self.access_token.error
        return None


class RevocationError(KeyturnError):
    """The provider may still honour the grant; the client forgot its tokens all the same.

    ``result`` says what happened to each token; ``__cause__`` is the provider's
    typed error (an `OAuthError`, `InvalidResponseError` or `TransportError`).
    """

    def __init__(self, result: RevocationResult, cause: KeyturnError) -> None:
        super().__init__(
            f"the provider did not confirm the revocation ({cause}); "
            "the local tokens were forgotten all the same"
        )
        self.result = result
