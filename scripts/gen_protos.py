"""Regenerates convoyd/v1 from proto/convoyd/v1 (``make gen``); ``--check`` fails if it is stale.

The generated modules are committed so that installing convoyd needs no protoc. Never edit
them by hand: change the .proto files and run this script.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PACKAGE_DIR = Path("convoyd") / "v1"
INIT_TEXT = '"""Generated from proto/convoyd/v1 by scripts/gen_protos.py. Do not edit."""\n'


def generate(out_root: Path) -> list[Path]:
    """Writes the generated package under ``out_root`` and returns the files written."""
    protos = sorted((PROTO_ROOT / PACKAGE_DIR).glob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *(str(p) for p in protos),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    (out_root / PACKAGE_DIR / "__init__.py").write_text(INIT_TEXT)
    return sorted((out_root / PACKAGE_DIR).iterdir())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="only report whether convoyd/v1 is stale"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        target = ROOT / PACKAGE_DIR
        if args.check:
            fresh_names = {p.name for p in fresh}
            current = {p.name for p in target.glob("*") if p.name != "__pycache__"}
            stale = sorted(
                name
                for name in fresh_names | current
                if name not in fresh_names
                or name not in current
                or not filecmp.cmp(Path(tmp) / PACKAGE_DIR / name, target / name, shallow=False)
            )
            if stale:
                print(f"convoyd/v1 is stale ({', '.join(stale)}): run `make gen`", file=sys.stderr)
                return 1
            return 0
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(Path(tmp) / PACKAGE_DIR, target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
