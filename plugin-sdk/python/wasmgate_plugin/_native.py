"""The host, faked for running a plugin natively (its unit tests): the modules componentize-py
generates inside a component (`wit_world`, `componentize_py_types`), backed by in-memory state
that `wasmgate_plugin.testing` reads and sets. Installed by the package when it is imported
outside a component."""

import sys
import time
import types as _pytypes
from dataclasses import dataclass
from enum import Enum, Flag, auto
from typing import Generic, List, Optional, Tuple, TypeVar

T = TypeVar("T")


@dataclass
class Ok(Generic[T]):
    value: T


@dataclass(frozen=True)
class Err(Exception):
    value: object


@dataclass
class Some(Generic[T]):
    value: T


class State:
    """What the fake host holds; reset between tests with `wasmgate_plugin.testing.reset()`."""

    def __init__(self):
        self.logs = []
        self.kv = {}
        self.kv_down = False
        self.local = {}
        self.metrics = {}
        self.now_ms = None
        self.http = {}


state = State()
# Whether the fake host is the one in use (natively, not inside a component).
active = False


def _module(name, **attrs):
    m = _pytypes.ModuleType(name)
    m.__dict__.update(attrs)
    sys.modules[name] = m
    return m


# ---- wasmgate:plugin/types


@dataclass
class Answer:
    status: int
    headers: List[Tuple[str, str]]
    body: bytes


@dataclass
class Action_Continue:
    pass


@dataclass
class Action_Respond:
    value: Answer


class Phases(Flag):
    REQUEST_HEADERS = auto()
    REQUEST_BODY = auto()
    RESPONSE_HEADERS = auto()
    RESPONSE_BODY = auto()
    LOG = auto()
    RAW_BODY = auto()


@dataclass
class LogEntry:
    route: str
    method: str
    target: str
    status: int
    request_bytes: int
    response_bytes: int
    duration_us: int
    upstream_us: Optional[int]
    upstream: Optional[str]
    client_ip: str
    context: List[Tuple[str, str]]
    completed: bool


# ---- log, clock, metrics, kv, http-client


class Level(Enum):
    TRACE = 0
    DEBUG = 1
    INFO = 2
    WARN = 3
    ERROR = 4


def log(level, message):
    state.logs.append((level.name.lower(), message))


def wall_ms():
    return state.now_ms if state.now_ms is not None else int(time.time() * 1000)


def monotonic_ns():
    return time.monotonic_ns()


def counter_add(name, value, labels):
    state.metrics[name] = state.metrics.get(name, 0) + value


def histogram_record(name, value, labels):
    state.metrics.setdefault(name + ":samples", []).append(value)


@dataclass
class Error_Unavailable:
    value: str


@dataclass
class Error_Invalid:
    value: str


def _up():
    if state.kv_down:
        raise Err(Error_Unavailable("the test host's store is down"))


def kv_get(key):
    _up()
    return state.kv.get(key)


def kv_set(key, value, ttl_ms):
    _up()
    state.kv[key] = bytes(value)


def kv_delete(key):
    _up()
    state.kv.pop(key, None)


def _incr(store, key, delta):
    try:
        n = int(store.get(key, b"0")) + delta
    except ValueError:
        raise Err(Error_Invalid(f"`{key}` does not hold a number")) from None
    store[key] = str(n).encode()
    return n


def kv_incr(key, delta, ttl_ms):
    _up()
    return _incr(state.kv, key, delta)


def local_incr(key, delta, ttl_ms):
    return _incr(state.local, key, delta)


def kv_compare_and_swap(key, expected, value, ttl_ms):
    _up()
    if state.kv.get(key) != (None if expected is None else bytes(expected)):
        return False
    state.kv[key] = bytes(value)
    return True


@dataclass
class Outgoing:
    method: str
    url: str
    headers: List[Tuple[str, str]]
    body: bytes
    timeout_ms: Optional[int]


@dataclass
class Incoming:
    status: int
    headers: List[Tuple[str, str]]
    body: bytes


@dataclass
class Error_Timeout:
    pass


@dataclass
class Error_Refused:
    value: str


@dataclass
class Error_NotAllowed:
    value: str


@dataclass
class Error_TooLarge:
    pass


@dataclass
class Error_Invalid_Http:
    value: str


def send(req):
    handler = next((h for prefix, h in state.http.items() if req.url.startswith(prefix)), None)
    if handler is None:
        raise Err(Error_NotAllowed(f"{req.url} is not mocked in the test host"))
    return handler(req)


def send_all(reqs):
    out = []
    for r in reqs:
        try:
            out.append(Ok(send(r)))
        except Err as e:
            out.append(e)
    return out


class Guest:
    pass


def install():
    """Puts the fake modules where the SDK imports the real ones from."""
    global active
    active = True
    _module("componentize_py_types", Ok=Ok, Err=Err, Some=Some)
    _module("wit_world")
    _module("wit_world.exports", Guest=Guest)
    imports = _module("wit_world.imports")
    imports.types = _module(
        "wit_world.imports.types",
        Answer=Answer,
        Action_Continue=Action_Continue,
        Action_Respond=Action_Respond,
        Phases=Phases,
        LogEntry=LogEntry,
    )
    imports.log = _module("wit_world.imports.log", Level=Level, log=log)
    imports.clock = _module("wit_world.imports.clock", wall_ms=wall_ms, monotonic_ns=monotonic_ns)
    imports.metrics = _module(
        "wit_world.imports.metrics", counter_add=counter_add, histogram_record=histogram_record
    )
    imports.kv = _module(
        "wit_world.imports.kv",
        Error_Unavailable=Error_Unavailable,
        Error_Invalid=Error_Invalid,
        get=kv_get,
        set=kv_set,
        delete=kv_delete,
        incr=kv_incr,
        compare_and_swap=kv_compare_and_swap,
        local_incr=local_incr,
    )
    imports.http_client = _module(
        "wit_world.imports.http_client",
        Outgoing=Outgoing,
        Incoming=Incoming,
        Error_Timeout=Error_Timeout,
        Error_Refused=Error_Refused,
        Error_NotAllowed=Error_NotAllowed,
        Error_TooLarge=Error_TooLarge,
        Error_Invalid=Error_Invalid_Http,
        send=send,
        send_all=send_all,
    )
