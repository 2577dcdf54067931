"""What a phase answers the client with, instead of going on."""

import json


def _bytes(body):
    """Bodies may be given as text (sent as UTF-8) or bytes; anything else is a mistake."""
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    raise TypeError(f"a body is str or bytes, not {type(body).__name__}")


class Answer:
    """A response the plugin sends instead of the upstream's (or in place of it)."""

    def __init__(self, status, body=b"", headers=None):
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise ValueError(f"{status!r} is not an HTTP status")
        self.status = status
        self.body = _bytes(body)
        self.headers = [(str(k), str(v)) for k, v in (headers or [])]

    @classmethod
    def problem(cls, status, detail, headers=None):
        """An RFC 9457 problem+json answer, as the gateway's own errors are."""
        body = json.dumps({"status": status, "detail": detail})
        return cls(
            status, body, [("content-type", "application/problem+json")] + list(headers or [])
        )

    @classmethod
    def json(cls, status, value, headers=None):
        return cls(
            status, json.dumps(value), [("content-type", "application/json")] + list(headers or [])
        )

    def __repr__(self):
        return f"Answer({self.status}, {len(self.body)} bytes, {self.headers})"
