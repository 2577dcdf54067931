"""The component's export: the gateway calls ``Guest``; it hands each call to the plugin class
marked with ``@plugin``. The build tool makes the component's entry module import this."""

import json
import logging
import sys
import traceback

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import log as host_log
from wit_world.imports import types

from . import _native
from .answer import Answer
from .config import ConfigError
from .plugin import Request, Response, registered

_LEVELS = (
    (logging.ERROR, host_log.Level.ERROR),
    (logging.WARNING, host_log.Level.WARN),
    (logging.INFO, host_log.Level.INFO),
    (logging.DEBUG, host_log.Level.DEBUG),
)


class _ToGateway(logging.Handler):
    """`logging` records go to the gateway's log, tagged with the plugin's name."""

    def emit(self, record):
        level = next((l for n, l in _LEVELS if record.levelno >= n), host_log.Level.TRACE)
        host_log.log(level, self.format(record))


class _Printed:
    """`print` and writes to stdout/stderr go to the gateway's log, a line at a time."""

    def __init__(self, level):
        self.level = level
        self.pending = ""

    def write(self, text):
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            host_log.log(self.level, line)
        return len(text)

    def flush(self):
        if self.pending:
            host_log.log(self.level, self.pending)
            self.pending = ""


def _wire_logging():
    root = logging.getLogger()
    if not any(isinstance(h, _ToGateway) for h in root.handlers):
        root.addHandler(_ToGateway())
        root.setLevel(logging.INFO)
    # Natively (unit tests) the test runner keeps its own output.
    if not _native.active:
        sys.stdout = _Printed(host_log.Level.INFO)
        sys.stderr = _Printed(host_log.Level.WARN)


class _Discard:
    def write(self, text):
        return len(text)

    def flush(self):
        pass


def _log_exception(where):
    """The exception being handled, with its traceback, to the gateway's log."""
    e = sys.exc_info()[1]
    host_log.log(
        host_log.Level.ERROR,
        f"exception in {where}: {type(e).__name__}: {e}\n{traceback.format_exc().rstrip()}",
    )


def _phase(name, call, *args):
    """One phase call. An exception is logged once, then re-raised: that traps the call, the
    gateway answers per the plugin's fail mode and drops this instance. The runtime would print
    the traceback again on stderr: that copy is discarded."""
    try:
        return _action(call(*args), name)
    except Exception:
        _log_exception(name)
        if not _native.active:
            sys.stderr = _Discard()
        raise


def _action(result, phase):
    if result is None:
        return types.Action_Continue()
    if isinstance(result, Answer):
        return types.Action_Respond(types.Answer(result.status, result.headers, result.body))
    raise TypeError(f"{phase} returned {type(result).__name__}: return None or an Answer")


_FLAGS = {
    "on_request_headers": types.Phases.REQUEST_HEADERS,
    "on_request_body": types.Phases.REQUEST_BODY,
    "on_response_headers": types.Phases.RESPONSE_HEADERS,
    "on_response_body": types.Phases.RESPONSE_BODY,
    "on_log": types.Phases.LOG,
}


class Guest(exports.Guest):
    plugin = None

    def init(self, config):
        _wire_logging()
        # A refusal, not a crash: the gateway keeps its last good config and says why.
        try:
            cls = registered()
            Guest.plugin = cls(json.loads(config))
        except ConfigError as e:
            raise Err(str(e))
        except Exception as e:
            # Not a refusal the plugin meant: where it came from matters.
            _log_exception("__init__")
            raise Err(f"{type(e).__name__}: {e}")
        phases = types.Phases(0)
        for name in cls.implemented():
            phases |= _FLAGS[name]
        if cls.raw_body:
            phases |= types.Phases.RAW_BODY
        return phases

    def on_request_headers(self, req):
        return _phase("on_request_headers", Guest.plugin.on_request_headers, Request(req))

    def on_request_body(self, req):
        return _phase("on_request_body", Guest.plugin.on_request_body, Request(req))

    def on_response_headers(self, req, resp):
        p = Guest.plugin
        return _phase("on_response_headers", p.on_response_headers, Request(req), Response(resp))

    def on_response_body(self, req, resp):
        p = Guest.plugin
        return _phase("on_response_body", p.on_response_body, Request(req), Response(resp))

    def on_log(self, entry):
        _phase("on_log", Guest.plugin.on_log, entry)
