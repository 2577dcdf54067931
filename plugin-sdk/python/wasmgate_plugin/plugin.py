"""The plugin class, and the request and response it gets in each phase."""

from componentize_py_types import Err

from .answer import _bytes

PHASES = (
    "on_request_headers",
    "on_request_body",
    "on_response_headers",
    "on_response_body",
    "on_log",
)

_registered = []


def plugin(cls):
    """Marks the module's plugin class (one per plugin)."""
    if not (isinstance(cls, type) and issubclass(cls, Plugin)):
        raise TypeError("@plugin goes on a subclass of wasmgate_plugin.Plugin")
    _registered[:] = [cls]
    return cls


def registered():
    if not _registered:
        raise RuntimeError("no plugin class: put @wasmgate_plugin.plugin on one")
    return _registered[0]


class Plugin:
    """Subclass it and implement the phases you need; the gateway calls only those.

    ``__init__(self, config)`` gets the config as a dict; raise :class:`ConfigError` (or any
    exception) to refuse it. Each phase returns ``None`` to go on or an ``Answer``. Set
    ``raw_body = True`` to get bodies still gzip/br encoded."""

    raw_body = False

    def __init__(self, config):
        pass

    def on_request_headers(self, req):
        return None

    def on_request_body(self, req):
        return None

    def on_response_headers(self, req, resp):
        return None

    def on_response_body(self, req, resp):
        return None

    def on_log(self, entry):
        return None

    @classmethod
    def implemented(cls):
        """The phase methods this class overrides."""
        return [p for p in PHASES if getattr(cls, p) is not getattr(Plugin, p)]


def _checked(call, *args):
    """A host call that returns `result<_, string>`, its error raised as ValueError."""
    try:
        return call(*args)
    except Err as e:
        raise ValueError(e.value) from None


class _Headers:
    """Header access shared by the request and the response."""

    def header(self, name):
        return self._h.header(name)

    def header_all(self, name):
        return self._h.header_all(name)

    def header_names(self):
        return self._h.header_names()

    def set_header(self, name, value):
        _checked(self._h.set_header, name, str(value))

    def append_header(self, name, value):
        _checked(self._h.append_header, name, str(value))

    def remove_header(self, name):
        self._h.remove_header(name)

    def body(self):
        return self._h.body()

    def set_body(self, body):
        self._h.set_body(_bytes(body))

    def skip_body(self):
        """In a headers phase: this plugin does not need the body; its body phase is not
        called, and when no plugin needs the body it streams unread."""
        self._h.skip_body()


class Request(_Headers):
    """The request as it will be sent upstream."""

    def __init__(self, handle):
        self._h = handle

    def method(self):
        return self._h.method()

    def path(self):
        return self._h.path()

    def set_path(self, path):
        _checked(self._h.set_path, path)

    def query(self):
        return self._h.query()

    def set_query(self, query):
        _checked(self._h.set_query, query)

    def authority(self):
        return self._h.authority()

    def scheme(self):
        return self._h.scheme()

    def client_ip(self):
        return self._h.client_ip()

    def route_name(self):
        return self._h.route_name()

    def path_param(self, name):
        return self._h.path_param(name)

    def set_upstream(self, upstream, target=None):
        _checked(self._h.set_upstream, upstream, target)

    def context_get(self, key):
        return self._h.context_get(key)

    def context_set(self, key, value):
        self._h.context_set(key, str(value))


class Response(_Headers):
    """The upstream's response (or the gateway's own error answer) on its way back."""

    def __init__(self, handle):
        self._h = handle

    def status(self):
        return self._h.status()

    def set_status(self, status):
        _checked(self._h.set_status, status)
