"""Unit-test a plugin natively, without a gateway: a fake host (in-memory kv, metrics, logs,
clock, mocked HTTP) and requests and responses built in the test.

    import unittest
    import app  # the plugin's module (registers its class)
    from wasmgate_plugin.testing import TestHost, TestRequest, TestResponse, reset, status

    class Test(unittest.TestCase):
        def test_denies(self):
            reset()
            h = TestHost({"deny_header": "x-deny"})
            self.assertEqual(status(h.request_headers(TestRequest("GET", "/", {"x-deny": "1"}))), 403)
"""

import json

from . import _native
from .guest import Guest
from .plugin import registered

_Err = _native.Err


def reset():
    """A fresh host: no kv entries, logs or metrics; the store up; the real clock."""
    _native.state.__init__()


def logs():
    """`(level, message)` pairs the plugin logged."""
    return list(_native.state.logs)


def metrics():
    """Counter values by name."""
    return dict(_native.state.metrics)


def kv():
    """The shared store's entries (bytes values)."""
    return _native.state.kv


def set_kv_down(down=True):
    _native.state.kv_down = down


def set_clock_ms(ms):
    _native.state.now_ms = ms


def mock_http(url_prefix, handler):
    """`handler(outgoing)` answers requests whose URL starts with `url_prefix`: return
    `(status, headers, body)`, or raise `wasmgate_plugin.testing.HttpFailure(kind)`."""

    def answer(req):
        try:
            status, headers, body = handler(req)
        except HttpFailure as f:
            raise _Err(f.error) from None
        if isinstance(body, str):
            body = body.encode()
        return _native.Incoming(status, list(headers), bytes(body))

    _native.state.http[url_prefix] = answer


class HttpFailure(Exception):
    """Raised by a mock to fail a request: kind is timeout, refused, not-allowed or too-large."""

    def __init__(self, kind, text=""):
        super().__init__(kind)
        self.error = {
            "timeout": lambda: _native.Error_Timeout(),
            "refused": lambda: _native.Error_Refused(text),
            "not-allowed": lambda: _native.Error_NotAllowed(text),
            "too-large": lambda: _native.Error_TooLarge(),
        }[kind]()


class _Headers:
    def __init__(self, headers):
        self.headers = [(k.lower(), str(v)) for k, v in dict(headers or {}).items()]
        self.body_bytes = None

    @staticmethod
    def _valid(name, value):
        if not name or any(c in name for c in " :\r\n\t") or not name.isascii():
            raise _Err(f"`{name}` is not a header name")
        if any(ord(c) < 0x20 and c != "\t" or ord(c) >= 0x7F for c in value):
            raise _Err("the header value has a control or non-ASCII character")

    def header(self, name):
        name = name.lower()
        return next((v for k, v in self.headers if k == name), None)

    def header_all(self, name):
        return [v for k, v in self.headers if k == name.lower()]

    def header_names(self):
        return list(dict.fromkeys(k for k, _ in self.headers))

    def set_header(self, name, value):
        self._valid(name, value)
        self.remove_header(name)
        self.headers.append((name.lower(), value))

    def append_header(self, name, value):
        self._valid(name, value)
        self.headers.append((name.lower(), value))

    def remove_header(self, name):
        self.headers = [(k, v) for k, v in self.headers if k != name.lower()]

    def body(self):
        return self.body_bytes

    def set_body(self, body):
        self.body_bytes = bytes(body)

    def skip_body(self):
        self.body_skipped = True


class TestRequest(_Headers):
    """A request as the gateway would hand it to a plugin."""

    def __init__(self, method="GET", target="/", headers=None, body=None, client_ip="127.0.0.1"):
        super().__init__(headers)
        path, _, query = target.partition("?")
        self.method_ = method
        self.path_ = path
        self.query_ = query or None
        self.client_ip_ = client_ip
        self.body_bytes = body.encode() if isinstance(body, str) else body
        self.context = {}
        self.upstream = None

    def method(self):
        return self.method_

    def path(self):
        return self.path_

    def set_path(self, path):
        if not path.startswith("/"):
            raise _Err("a path starts with /")
        self.path_ = path

    def query(self):
        return self.query_

    def set_query(self, query):
        self.query_ = query

    def authority(self):
        return self.header("host") or "example.test"

    def scheme(self):
        return "http"

    def client_ip(self):
        return self.client_ip_

    def route_name(self):
        return "test"

    def path_param(self, name):
        return None

    def set_upstream(self, upstream, target):
        self.upstream = (upstream, target)

    def context_get(self, key):
        return self.context.get(key)

    def context_set(self, key, value):
        self.context[key] = value


class TestResponse(_Headers):
    """An upstream's response on its way back."""

    def __init__(self, status=200, headers=None, body=None):
        super().__init__(headers)
        self.status_ = status
        self.body_bytes = body.encode() if isinstance(body, str) else body

    def status(self):
        return self.status_

    def set_status(self, status):
        if not 100 <= status <= 599:
            raise _Err(f"{status} is not an HTTP status")
        self.status_ = status


class TestHost:
    """The module's plugin class, initialized with `config` as the gateway would: a refused
    config raises ValueError with the gateway's message."""

    def __init__(self, config=None):
        self.guest = Guest()
        try:
            self.phases = self.guest.init(json.dumps(config or {}))
        except _Err as e:
            raise ValueError(e.value) from None
        self.plugin_class = registered()

    def request_headers(self, req):
        return self.guest.on_request_headers(req)

    def request_body(self, req):
        if getattr(req, "body_skipped", False):
            return _native.Action_Continue()
        return self.guest.on_request_body(req)

    def response_headers(self, req, resp):
        return self.guest.on_response_headers(req, resp)

    def response_body(self, req, resp):
        if getattr(resp, "body_skipped", False):
            return _native.Action_Continue()
        return self.guest.on_response_body(req, resp)


def status(action):
    """200 for "go on", else the answer's status."""
    return action.value.status if isinstance(action, _native.Action_Respond) else 200


def answer(action):
    """The answer of an action, or None when it goes on."""
    return action.value if isinstance(action, _native.Action_Respond) else None
