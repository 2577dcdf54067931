"""Write wasmgate policy plugins in Python.

A plugin is a class with the phase methods it needs; the SDK reports those (and only those) to
the gateway at load, parses the plugin's config, turns exceptions into a refused config (in
``__init__``) or the plugin's fail mode (in a phase) with the traceback in the gateway's log, and
wires ``logging`` and ``print`` to the gateway's log::

    import wasmgate_plugin as wg

    @wg.plugin
    class Deny(wg.Plugin):
        def __init__(self, config):
            self.header = wg.config(config, {"header": "x-deny"})["header"]

        def on_request_headers(self, req):
            if req.header(self.header) is not None:
                return wg.Answer.problem(403, "denied")

A phase returns ``None`` to go on, or an :class:`Answer`. Build with ``wasmgate-plugin-build``.
"""

try:
    import wit_world  # noqa: F401  (inside a component: the gateway's own bindings)
except ImportError:
    # Natively, e.g. in a plugin's unit tests: a fake host (see wasmgate_plugin.testing).
    from . import _native

    _native.install()

from .answer import Answer
from .config import ConfigError, config
from .plugin import Plugin, plugin
from . import clock, http, kv, metrics

__all__ = [
    "Answer",
    "ConfigError",
    "Plugin",
    "clock",
    "config",
    "http",
    "kv",
    "metrics",
    "plugin",
]
