"""SDK overhead: requests/s through httpx2 with OAuth2Auth (cached token) vs a static header.

Both clients talk to the same tiny HTTP/1.1 keep-alive server on 127.0.0.1 in
this process' threads, in many short alternating rounds so drift (CPU
frequency, other load) hits both alike. The median rates and the median of the per-round ratios are
printed; the target is overhead <= 5 %. A second, in-process run
(httpx2.MockTransport, no sockets) shows the absolute cost per request, which
the socket run hides in network noise.

    /work/venv/bin/python benchmarks/sdk_overhead.py [--rounds 41] [--requests 100]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx2

from keyturn.client import ClientCredentials, OAuth2Auth, TokenManager


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: measure the SDK, not TCP set-up
    disable_nagle_algorithm = True  # headers and body go out as two writes

    def _send(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._send(b'{"ok":true}')

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        token = {"access_token": "bench-token", "token_type": "Bearer", "expires_in": 3600}
        self._send(json.dumps(token).encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


def rate(client: httpx2.Client, url: str, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        client.get(url)
    return n / (time.perf_counter() - start)


def compare(
    make_static: Callable[[], httpx2.Client],
    make_auth: Callable[[], httpx2.Client],
    url: str,
    rounds: int,
    n: int,
) -> tuple[float, float, float]:
    """Median rates and the median of per-round ratios (robust to load on a shared machine)."""
    static_rates: list[float] = []
    auth_rates: list[float] = []
    ratios: list[float] = []
    with make_static() as static, make_auth() as authed:
        rate(static, url, n)  # warm up: connections, token, code paths
        rate(authed, url, n)
        for i in range(rounds):
            if i % 2 == 0:
                s, a = rate(static, url, n), rate(authed, url, n)
            else:
                a, s = rate(authed, url, n), rate(static, url, n)
            static_rates.append(s)
            auth_rates.append(a)
            ratios.append(a / s)
    return statistics.median(static_rates), statistics.median(auth_rates), statistics.median(ratios)


def report(label: str, static: float, authed: float, ratio: float) -> None:
    print(f"{label}")
    print(f"  static Authorization header : {static:10.0f} req/s (median)")
    print(f"  OAuth2Auth, cached token    : {authed:10.0f} req/s (median)")
    print(f"  ratio auth/static           : {ratio:10.3f}  (median of per-round ratios;")
    print(f"                                overhead {100 * (1 - ratio):.1f} %, target <= 5 %)")


def flow_cost_us(auth: OAuth2Auth, n: int = 20000) -> float:
    """Microseconds the auth flow adds per request beyond setting a header (no I/O at all)."""
    request = httpx2.Request("GET", "https://api.invalid/api")
    response = httpx2.Response(200)

    def with_auth() -> None:
        flow = auth.sync_auth_flow(request)
        next(flow)
        with contextlib.suppress(StopIteration):
            flow.send(response)

    def static_header() -> None:
        request.headers["Authorization"] = "Bearer bench-token"

    costs = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            with_auth()
        middle = time.perf_counter()
        for _ in range(n):
            static_header()
        costs.append(((middle - start) - (time.perf_counter() - middle)) / n * 1e6)
    return statistics.median(costs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--requests", type=int, default=100)
    args = parser.parse_args()

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    creds = ClientCredentials(client_id="bench", client_secret="s", token_url=f"{base}/token")
    try:
        manager = TokenManager(creds)
        static, authed, ratio = compare(
            lambda: httpx2.Client(headers={"Authorization": "Bearer bench-token"}),
            lambda: httpx2.Client(auth=OAuth2Auth(manager)),
            f"{base}/api",
            args.rounds,
            args.requests,
        )
        label = f"127.0.0.1 HTTP/1.1 keep-alive, {args.rounds} rounds x {args.requests} requests"
        report(label, static, authed, ratio)
        added = flow_cost_us(OAuth2Auth(manager))
        print(
            f"  auth flow cost, no I/O       : {added:10.2f} us per request (median of 5 x 20000)"
        )
        print(f"  = share of a loopback request: {100 * added * static / 1e6:10.2f} %")
        manager.close()
    finally:
        httpd.shutdown()
        httpd.server_close()

    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.method == "POST":
            token = {"access_token": "bench-token", "token_type": "Bearer", "expires_in": 3600}
            return httpx2.Response(200, json=token)
        return httpx2.Response(200, json={"ok": True})

    transport = httpx2.MockTransport(handler)
    in_process = TokenManager(creds.clone_with(token_url="https://auth.invalid/token"))
    static, authed, ratio = compare(
        lambda: httpx2.Client(transport=transport, headers={"Authorization": "Bearer bench-token"}),
        lambda: httpx2.Client(transport=transport, auth=OAuth2Auth(in_process)),
        "https://api.invalid/api",
        args.rounds,
        args.requests * 5,
    )
    report(
        "in-process MockTransport (no sockets: the SDK's own cost, magnified)",
        static,
        authed,
        ratio,
    )


if __name__ == "__main__":
    main()
