"""`wasmgate-plugin-build app.py -o plugin.wasm`: a Python plugin module into a WebAssembly
component for the gateway, with componentize-py against the SDK's copy of the contract."""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# The SDK package beside this one; this tool runs outside the component, so it never imports it.
SDK = Path(__file__).resolve().parent.parent / "wasmgate_plugin"
WIT = SDK / "wit"
WORLD = "plugin"

ENTRY = """\
import {module}  # defines the plugin class (@wasmgate_plugin.plugin)
from wasmgate_plugin.guest import Guest
"""


def build(app, out):
    app = Path(app).resolve()
    if app.suffix != ".py" or not app.is_file():
        sys.exit(f"wasmgate-plugin-build: {app} is not a Python file")
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    componentize = Path(sys.executable).with_name("componentize-py")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "wasmgate_entry.py").write_text(ENTRY.format(module=app.stem))
        # Written next to the target and renamed: a gateway watching `out` never loads half a file.
        partial = out.with_name(f".{out.name}.partial")
        cmd = [
            str(componentize),
            "-d", str(WIT),
            "-w", WORLD,
            "componentize", "wasmgate_entry",
            "-p", tmp,
            "-p", str(app.parent),
            "-p", str(SDK.parent),
            "-o", str(partial),
        ]
        done = subprocess.run(cmd, stdout=subprocess.DEVNULL)
        if done.returncode != 0:
            partial.unlink(missing_ok=True)
            sys.exit(f"wasmgate-plugin-build: componentize-py failed for {app}")
        os.replace(partial, out)


def main():
    p = argparse.ArgumentParser(prog="wasmgate-plugin-build", description=__doc__)
    p.add_argument("app", help="the plugin's module, e.g. app.py")
    p.add_argument("-o", "--output", required=True, help="the .wasm file to write")
    args = p.parse_args()
    build(args.app, args.output)


if __name__ == "__main__":
    main()
