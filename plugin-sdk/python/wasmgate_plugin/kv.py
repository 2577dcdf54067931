"""The gateway's shared key-value store (in-process, or Redis when configured). Keys are private
to the plugin. Every call may raise :class:`Unavailable` when the backend is down: decide what
your policy does then."""

from componentize_py_types import Err
from wit_world.imports import kv as _kv


class Unavailable(Exception):
    """The store cannot be reached now."""


class Invalid(Exception):
    """The call does not fit the stored value (e.g. `incr` on text) or the key is empty."""


def _call(f, *args):
    try:
        return f(*args)
    except Err as e:
        if isinstance(e.value, _kv.Error_Unavailable):
            raise Unavailable(e.value.value) from None
        raise Invalid(e.value.value) from None


def _ms(ttl_s):
    return None if ttl_s is None else int(ttl_s * 1000)


def get(key):
    """The value of `key` as bytes, or None."""
    return _call(_kv.get, key)


def set(key, value, ttl_s=None):
    """Sets `key` (str or bytes), expiring after `ttl_s` seconds if given."""
    if isinstance(value, str):
        value = value.encode("utf-8")
    _call(_kv.set, key, bytes(value), _ms(ttl_s))


def delete(key):
    _call(_kv.delete, key)


def incr(key, delta=1, ttl_s=None):
    """Adds `delta` atomically; a missing key counts as 0 and gets `ttl_s` when created."""
    return _call(_kv.incr, key, delta, _ms(ttl_s))


def compare_and_swap(key, expected, value, ttl_s=None):
    """Sets `key` to `value` only if it holds `expected` now (None: only if missing), atomically
    for every gateway on the store; False when another request changed it first (read, retry)."""
    as_bytes = lambda v: v.encode("utf-8") if isinstance(v, str) else bytes(v)
    old = None if expected is None else as_bytes(expected)
    return _call(_kv.compare_and_swap, key, old, as_bytes(value), _ms(ttl_s))


def local_incr(key, delta=1, ttl_s=None):
    """`incr` on this gateway's own in-process store: a fallback when the shared one is down."""
    return _kv.local_incr(key, delta, _ms(ttl_s))
