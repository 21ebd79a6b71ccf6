"""Overhead of TokenVerifier over a bare joserfc decode of the same tokens.

    python benchmarks/verify_overhead.py [--alg RS256] [--tokens 500] [--rounds 7]

Both sides verify the same signed access tokens with the same public key, in
the same process, interleaved round by round so that CPU frequency changes and
noisy neighbours hit both alike. "Bare" is ``joserfc.jwt.decode`` with the
key in hand: signature only. TokenVerifier does the whole job: header checks,
kid lookup in its (warm) JWKS cache, signature, RFC 9068 claims and typing,
with its memory of verified tokens off, so every call is a full check (a miss).
A third side, "remembered", verifies tokens the verifier has seen before, as an
API sees a client's reused token: no parse and no signature, only the key,
time-claim and revocation checks (a hit). Time is CPU time of this process,
interleaved in chunks of 25 tokens. The result is the median verifications/s of
each over the rounds, the overhead of a miss ``bare / verifier - 1`` (target:
at most 10 %) and how many times faster a hit is than a miss.

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


def run(alg: str, count: int, rounds: int) -> tuple[float, float, float, float]:
    """Median rates (verifications/s) of bare, a miss and a hit, and a miss's overhead."""
    key = make_key(alg)
    now = time.time()
    tokens = make_tokens(key, alg, count, now)
    jwks = {"keys": [key.as_dict(private=False)]}

    def serve(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json=jwks)

    client = httpx2.Client(transport=httpx2.MockTransport(serve))
    verifier = TokenVerifier(
        ISSUER,
        AUDIENCE,
        algorithms=[alg],
        jwks_uri=ISSUER + "/jwks",
        http_client=client,
        verified_cache_size=0,
    )
    verifier.verify(tokens[0])  # warm the JWKS cache: the steady state is what matters
    remembering = TokenVerifier(
        ISSUER, AUDIENCE, algorithms=[alg], jwks_uri=ISSUER + "/jwks", http_client=client
    )
    for token in tokens:
        remembering.verify(token)  # seen once: every timed call below is a hit

    def bare(token: str) -> object:
        return jwt.decode(token, key, algorithms=[alg])

    sides = [("bare", bare), ("miss", verifier.verify), ("hit", remembering.verify)]
    rates: dict[str, list[float]] = {name: [] for name, _ in sides}
    chunks = [tokens[i : i + CHUNK] for i in range(0, len(tokens), CHUNK)]
    for i in range(rounds):
        spent = dict.fromkeys(rates, 0.0)
        # Interleave in small chunks, rotating who goes first, so that a
        # frequency change or a noisy neighbour hits every side alike.
        for j, chunk in enumerate(chunks):
            turn = (i + j) % len(sides)
            for name, check in sides[turn:] + sides[:turn]:
                spent[name] += cpu_seconds(check, chunk)
        for name in rates:
            rates[name].append(len(tokens) / spent[name])
    client.close()
    b, miss, hit = (statistics.median(rates[name]) for name in ("bare", "miss", "hit"))
    return b, miss, hit, b / miss - 1


def main(argv: Sequence[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description="TokenVerifier overhead vs a bare joserfc decode")
    parser.add_argument("--alg", default="RS256", choices=["RS256", "ES256", "EdDSA"])
    parser.add_argument("--tokens", type=int, default=500, help="tokens per round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)  # joserfc warns on each EdDSA use
        bare, miss, hit, overhead = run(args.alg, args.tokens, args.rounds)
    print(f"alg {args.alg}, {args.tokens} tokens x {args.rounds} rounds (medians)")
    print(f"bare joserfc decode            : {bare:10.0f} verifications/s")
    print(f"TokenVerifier.verify, new token: {miss:10.0f} verifications/s")
    print(f"TokenVerifier.verify, reused   : {hit:10.0f} verifications/s ({hit / miss:.1f}x)")
    print(f"overhead of a new token        : {overhead * 100:+.1f} % (target <= 10 %)")
    return overhead


if __name__ == "__main__":
    main()
