"""Sans-IO OAuth 2.0 protocol core shared by the server, the SDK and the guard."""
