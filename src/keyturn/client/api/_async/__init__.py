"""Keyturn's API shells: `AsyncKeyturnClient`, `AsyncTokens`, `AsyncClients`, `AsyncTokenPager`.

Each method builds a `Call` with the sans-IO operations (`token_ops`,
`client_ops`, `oauth_ops`) and hands it to the client's `_run`, the one place
that sends. The asyncio shells in ``_async`` are written by hand;
``scripts/unasync.py`` writes the blocking ones in ``_sync`` from them, and CI
fails when those are stale.
"""
