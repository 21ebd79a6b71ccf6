"""What every operation of Keyturn's API shares: the `Call`, request options, JSON in and out.

Each operation is a `Call`: the `HttpRequest` to send and the function that
turns the answer into a typed result (oauth4webapi's request/process pairs).
Building and processing do no I/O, so `KeyturnClient` and `AsyncKeyturnClient`
only send, each in its own way (websockets' sans-IO core with thin shells), and
the whole protocol is tested without a transport.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Generic, TypedDict, TypeVar
from urllib.parse import parse_qsl, quote, urlencode

from keyturn.client.api.errors import raise_for_api_error
from keyturn.core.errors import InvalidResponseError
from keyturn.core.http import HttpRequest, HttpResponse
from keyturn.core.paths import ADMIN_PATH, KeyturnUrls

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

ADMIN_SCOPE = "keyturn:admin"
_BODYLESS = frozenset({"GET", "DELETE", "HEAD"})


class RequestOptions(TypedDict, total=False):
    """Per-call overrides. The names are those of Fern-generated SDKs (Candid's among
    them), so call sites written for those carry over unchanged."""

    timeout_in_seconds: float
    additional_headers: Mapping[str, str]
    additional_body_parameters: Mapping[str, Any]
    additional_query_parameters: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One operation: send ``request`` (with the admin token when ``admin``), then ``process``."""

    request: HttpRequest
    process: Callable[[HttpResponse], T]
    admin: bool = False


@dataclass(frozen=True, slots=True)
class Endpoints(KeyturnUrls):
    """Where a Keyturn server answers, and the default timeout of each request."""

    base_url: str
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("https://", "http://")):
            raise ValueError("base_url must be an http(s) URL, e.g. https://auth.example")
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))

    def admin_url(self, *segments: str) -> str:
        """``/admin/v1/<segments>``, each percent-encoded so an id cannot change the path."""
        for segment in segments:
            if not segment:
                raise ValueError("an identifier must not be empty")
        return "/".join([self.base_url + ADMIN_PATH, *(quote(s, safe="") for s in segments)])


def admin_call(
    ep: Endpoints,
    method: str,
    path: tuple[str, ...],
    process: Callable[[HttpResponse], T],
    *,
    body: Mapping[str, Any] | None = None,
    query: Mapping[str, Any] | None = None,
    options: RequestOptions | None = None,
) -> Call[T]:
    """An admin API operation: a JSON request to ``/admin/v1/<path>``, sent with the admin
    token; ``None`` query values are left out."""
    url = ep.admin_url(*path)
    headers = {"Accept": "application/json"}
    content = b""
    if body is not None:
        headers["Content-Type"] = "application/json"
        content = json.dumps(body).encode()
    params = {k: _query_value(v) for k, v in (query or {}).items() if v is not None}
    if params:
        url += "?" + urlencode(params)
    request = HttpRequest(method, url, headers, content, ep.timeout)
    return Call(apply_options(request, options), process, admin=True)


def _query_value(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def apply_options(request: HttpRequest, options: RequestOptions | None) -> HttpRequest:
    """The request with the caller's timeout, headers, query and body parameters added.

    It works on finished requests, so the core's own builders (token,
    revocation) get the same treatment as the admin API's. Extra body
    parameters go into a JSON or form body as the request already has one; a
    ``GET`` or ``DELETE`` has no body to put them in, which is an error rather
    than a silent drop.
    """
    if not options:
        return request
    headers = dict(request.headers)
    headers.update(options.get("additional_headers", {}))
    url = request.url
    query = options.get("additional_query_parameters", {})
    if query:
        url += ("&" if "?" in url else "?") + urlencode({k: str(v) for k, v in query.items()})
    body = request.body
    extra = options.get("additional_body_parameters", {})
    if extra:
        body = _merge_body(request, headers, extra)
    timeout = options.get("timeout_in_seconds", request.timeout)
    return replace(request, url=url, headers=headers, body=body, timeout=timeout)


def _merge_body(request: HttpRequest, headers: dict[str, str], extra: Mapping[str, Any]) -> bytes:
    if request.method in _BODYLESS:
        raise ValueError(f"a {request.method} request has no body for additional_body_parameters")
    ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    if ctype.startswith("application/x-www-form-urlencoded"):
        form = dict(parse_qsl(request.body.decode(), keep_blank_values=True))
        form.update({k: str(v) for k, v in extra.items()})
        return urlencode(form).encode()
    data: Any = json.loads(request.body) if request.body else {}
    if not isinstance(data, dict):
        raise ValueError("additional_body_parameters need a JSON object body")
    data.update(extra)
    if not ctype:
        headers["Content-Type"] = "application/json"
    return json.dumps(data).encode()


# -- responses -----------------------------------------------------------------------


def expect_json(response: HttpResponse, status: int, what: str) -> Any:
    """The JSON body of an admin answer with ``status``; typed errors otherwise."""
    expect_status(response, status, what)
    if response.content_type != "application/json":
        raise InvalidResponseError(
            f"{what}: expected JSON, got {response.content_type or 'an untyped body'}",
            status_code=response.status_code,
        )
    try:
        return json.loads(response.body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidResponseError(
            f"{what}: the body is not valid JSON", status_code=response.status_code
        ) from None


def expect_status(response: HttpResponse, status: int, what: str) -> None:
    raise_for_api_error(response)
    if response.status_code != status:
        raise InvalidResponseError(
            f"{what}: expected HTTP {status}, got {response.status_code}",
            status_code=response.status_code,
        )


def str_list(values: Iterable[str] | str | None) -> list[str] | None:
    """A scope or audience list as the API wants it; a string is split on spaces."""
    if values is None:
        return None
    return values.split() if isinstance(values, str) else list(values)


def json_result(parse: Callable[[Any], T], status: int, what: str) -> Callable[[HttpResponse], T]:
    """A ``process`` step: expect ``status``, then read the JSON body with ``parse``."""
    return lambda response: parse(expect_json(response, status, what))


def no_content(what: str) -> Callable[[HttpResponse], None]:
    """A ``process`` step for routes that answer ``204 No Content``."""
    return lambda response: expect_status(response, 204, what)


def without_none(**fields: Any) -> dict[str, Any]:
    """A JSON body of the fields given: ``None`` means "the server's default"."""
    return {k: v for k, v in fields.items() if v is not None}


# -- the shells' methods --------------------------------------------------------------

_CALL_OF = re.compile(r"Call\[(.+)\]")


def shell_method(op: Callable[..., Any], method: F, *, supplied: int = 1, result: Any = None) -> F:
    """``method``, a shell's sender of ``op``, described as ``op`` is, for ``help()``,
    `inspect.signature` and `typing.get_type_hints`: op's name and docstring, op's
    parameters after the ``supplied`` ones the shell fills in (``self`` in their place),
    and what the method returns: ``result``, else what op's `Call` carries."""
    sig = inspect.signature(op)
    params = list(sig.parameters.values())[supplied:]
    if result is None:
        match = _CALL_OF.fullmatch(str(sig.return_annotation))
        result = match[1] if match else sig.return_annotation
    this = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    method.__name__ = method.__qualname__ = op.__name__
    method.__doc__ = op.__doc__
    method.__wrapped__ = op  # type: ignore[attr-defined]  # get_type_hints reads op's names
    method.__signature__ = sig.replace(  # type: ignore[attr-defined]
        parameters=[this, *params], return_annotation=result
    )
    method.__annotations__ = {
        **{p.name: p.annotation for p in params if p.annotation is not p.empty},
        "return": result,
    }
    return method
