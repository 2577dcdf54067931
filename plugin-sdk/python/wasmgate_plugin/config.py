"""The plugin's config: its table in gateway.toml, handed over as JSON."""


class ConfigError(Exception):
    """Raised from a plugin's ``__init__``: the gateway refuses the config with this message."""


def config(given, defaults, required=()):
    """``given`` checked against the keys a plugin knows: ``defaults`` (key -> default value,
    whose type the given value must have) and ``required`` keys (no default). Returns a dict
    with every key. Unknown keys, missing keys and wrong types raise :class:`ConfigError`
    naming the key and what to do."""
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise ConfigError("the plugin's config is a table of keys")
    known = set(defaults) | set(required)
    for key in given:
        if key not in known:
            raise ConfigError(
                f"unknown key `{key}`; this plugin knows: {', '.join(sorted(known)) or 'none'}"
            )
    for key in required:
        if key not in given:
            raise ConfigError(f"`{key}` is required; add it to this plugin's `config` table")
    out = dict(defaults)
    for key, value in given.items():
        want = defaults.get(key)
        if want is not None and not _same_kind(want, value):
            raise ConfigError(
                f"`{key}`: expected {_kind(want)}, got {_kind(value)}; fix `{key}` in this "
                f"plugin's `config` table"
            )
        out[key] = value
    return out


def _same_kind(want, value):
    if isinstance(want, bool) or isinstance(value, bool):
        return isinstance(want, bool) and isinstance(value, bool)
    if isinstance(want, (int, float)):
        return isinstance(value, (int, float))
    return isinstance(value, type(want))


def _kind(v):
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(v), type(v).__name__)
