"""Outbound HTTP, only to upstreams the plugin's config allows (`http = ["name"]` in its
`[plugins.*]` table): URLs are `http://UPSTREAM/path`."""

from componentize_py_types import Err, Ok
from wit_world.imports import http_client as _h


class HttpError(Exception):
    """An outbound call that got no response."""


class Timeout(HttpError):
    pass


class Refused(HttpError):
    pass


class NotAllowed(HttpError):
    pass


class TooLarge(HttpError):
    pass


class Invalid(HttpError):
    pass


class Response:
    def __init__(self, incoming):
        self.status = incoming.status
        self.headers = incoming.headers
        self.body = incoming.body

    def header(self, name):
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    def text(self):
        return self.body.decode("utf-8", "replace")


def _error(e):
    kinds = {
        _h.Error_Timeout: (Timeout, "no answer in time"),
        _h.Error_Refused: (Refused, None),
        _h.Error_NotAllowed: (NotAllowed, None),
        _h.Error_TooLarge: (TooLarge, "the response body is too large"),
        _h.Error_Invalid: (Invalid, None),
    }
    cls, text = kinds.get(type(e), (HttpError, None))
    return cls(text or getattr(e, "value", str(e)))


def request(method, url, headers=None, body=b"", timeout_ms=None):
    """An outgoing request for :func:`send` or :func:`send_all`."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    return _h.Outgoing(method, url, list((headers or {}).items()), bytes(body), timeout_ms)


def send(method, url, headers=None, body=b"", timeout_ms=None):
    """One request; raises an :class:`HttpError` subclass when there is no response."""
    try:
        return Response(_h.send(request(method, url, headers, body, timeout_ms)))
    except Err as e:
        raise _error(e.value) from None


def send_all(requests):
    """Every request at once; a list, in order, of :class:`Response` or :class:`HttpError`."""
    out = []
    for r in _h.send_all(list(requests)):
        out.append(Response(r.value) if isinstance(r, Ok) else _error(r.value))
    return out
