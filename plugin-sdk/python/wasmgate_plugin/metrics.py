"""Metrics that appear on the gateway's metrics endpoint, named after the plugin."""

from wit_world.imports import metrics as _m


def counter_add(name, value=1, labels=None):
    _m.counter_add(name, int(value), list((labels or {}).items()))


def histogram_record(name, value, labels=None):
    _m.histogram_record(name, float(value), list((labels or {}).items()))
