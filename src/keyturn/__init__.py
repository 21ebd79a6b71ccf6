"""Keyturn: the OAuth 2.0 token lifecycle, end to end.

`pip install keyturn` gives the client SDK and the resource-server guard; the
token server is the ``server`` extra.
"""

__version__ = "0.1.0"
