"""Signing keys: generate, store, rotate, publish (JWKS, PEM) and sign JWTs."""
