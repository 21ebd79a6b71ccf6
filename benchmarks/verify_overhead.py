"""Overhead of TokenVerifier over a bare joserfc decode of the same tokens.

    python benchmarks/verify_overhead.py [--alg RS256] [--tokens 500] [--rounds 7]

Both sides verify the same signed access tokens with the same public key, in
the same process, interleaved round by round so that CPU frequency changes and
noisy neighbours hit both alike. "Bare" is ``joserfc.jwt.decode`` with the
key in hand: signature only. TokenVerifier does the whole job: header checks,
kid lookup in its (warm) JWKS cache, signature, RFC 9068 claims and typing.
Time is CPU time of this process, interleaved in chunks of 25 tokens. The
result is the median verifications/s of each over the rounds and the overhead
``bare / verifier - 1``; the target is at most 10 %.

Loops are bounded (tokens x rounds); nothing touches the network: the JWKS is
served once through httpx2.MockTransport to warm the cache.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
import warnings
from collections.abc import Callable, Sequence

import httpx2
from joserfc import jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, Key, KeyParameters, OKPKey, RSAKey

from keyturn.guard import TokenVerifier

ISSUER = "https://auth.bench.test"
AUDIENCE = "https://api.bench.test"
CHUNK = 25


def make_key(alg: str) -> Key:
    params: KeyParameters = {"kid": "bench-1"}
    if alg.startswith(("RS", "PS")):
        return RSAKey.generate_key(2048, parameters=params)
    if alg == "ES256":
        return ECKey.generate_key("P-256", parameters=params)
    return OKPKey.generate_key("Ed25519", parameters=params)


def make_tokens(key: Key, alg: str, count: int, now: float) -> list[str]:
    header = {"alg": alg, "typ": "at+jwt", "kid": key.kid}
    return [
        jwt.encode(
            header,
            {
                "iss": ISSUER, "sub": f"user-{i}", "aud": AUDIENCE, "client_id": "bench",
                "scope": "orders:read orders:write", "iat": int(now), "exp": int(now) + 3600,
                "jti": uuid.uuid4().hex,
            },
            key,
            algorithms=[alg],
        )
        for i in range(count)
    ]  # fmt: skip


def cpu_seconds(check: Callable[[str], object], tokens: Sequence[str]) -> float:
    # CPU time of this process: time spent descheduled on a shared machine is not ours.
    start = time.process_time()
    for token in tokens:
        check(token)
    return time.process_time() - start


def run(alg: str, count: int, rounds: int) -> tuple[float, float, float]:
    """Median bare rate, median verifier rate, overhead (both rates in verifications/s)."""
    key = make_key(alg)
    now = time.time()
    tokens = make_tokens(key, alg, count, now)
    jwks = {"keys": [key.as_dict(private=False)]}

    def serve(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json=jwks)

    client = httpx2.Client(transport=httpx2.MockTransport(serve))
    verifier = TokenVerifier(
        ISSUER, AUDIENCE, algorithms=[alg], jwks_uri=ISSUER + "/jwks", http_client=client
    )
    verifier.verify(tokens[0])  # warm the JWKS cache: the steady state is what matters

    def bare(token: str) -> object:
        return jwt.decode(token, key, algorithms=[alg])

    bare_rates: list[float] = []
    verifier_rates: list[float] = []
    chunks = [tokens[i : i + CHUNK] for i in range(0, len(tokens), CHUNK)]
    for i in range(rounds):
        spent = {"bare": 0.0, "verifier": 0.0}
        # Interleave in small chunks, alternating who goes first, so that a
        # frequency change or a noisy neighbour hits both sides alike.
        for j, chunk in enumerate(chunks):
            sides = [("bare", bare), ("verifier", verifier.verify)]
            for name, check in sides if (i + j) % 2 else reversed(sides):
                spent[name] += cpu_seconds(check, chunk)
        bare_rates.append(len(tokens) / spent["bare"])
        verifier_rates.append(len(tokens) / spent["verifier"])
    client.close()
    b, v = statistics.median(bare_rates), statistics.median(verifier_rates)
    return b, v, b / v - 1


def main(argv: Sequence[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description="TokenVerifier overhead vs a bare joserfc decode")
    parser.add_argument("--alg", default="RS256", choices=["RS256", "ES256", "EdDSA"])
    parser.add_argument("--tokens", type=int, default=500, help="tokens per round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)  # joserfc warns on each EdDSA use
        bare, verified, overhead = run(args.alg, args.tokens, args.rounds)
    print(f"alg {args.alg}, {args.tokens} tokens x {args.rounds} rounds (medians)")
    print(f"bare joserfc decode : {bare:10.0f} verifications/s")
    print(f"TokenVerifier.verify: {verified:10.0f} verifications/s")
    print(f"overhead            : {overhead * 100:+.1f} % (target <= 10 %)")
    return overhead


if __name__ == "__main__":
    main()
