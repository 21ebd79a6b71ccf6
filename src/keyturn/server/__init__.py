"""The token server: an ASGI app with one module per endpoint and per grant."""
