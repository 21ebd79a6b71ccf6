"""`OAuth2Auth`, an httpx2 ``Auth`` that keeps every request authorized, where it is imported from.

It lives with `TokenManager` in `keyturn.client.manager` (each builds the
other, and one module keeps that from being an import cycle); its flows,
`sync_flow` and `async_flow`, live with the other shells in `keyturn.client._drivers`.
"""

from keyturn.client._drivers import async_flow, sync_flow
from keyturn.client.manager import OAuth2Auth

__all__ = ["OAuth2Auth", "async_flow", "sync_flow"]
