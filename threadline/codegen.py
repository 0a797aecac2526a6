"""Generate the Python protobuf/gRPC package `threadline.v1` from `protos/`.

`make proto` writes it into the source tree; `tests/test_contract.py` regenerates into a
temporary folder and fails when the committed files differ, so the generated code can never
drift from the contract or be edited by hand unnoticed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"


def proto_files() -> list[Path]:
    return sorted(PROTO_ROOT.rglob("*.proto"))


def generate(out_dir: Path) -> list[Path]:
    """Run protoc into `out_dir`; returns the generated files."""
    include = Path(protoc.__file__).parent / "_proto"
    files = [str(p.relative_to(PROTO_ROOT)) for p in proto_files()]
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *files,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed")
    package = out_dir / "threadline" / "v1"
    marker = '"""Generated from protos/threadline/v1: do not edit."""\n'
    (package / "__init__.py").write_text(marker)
    return sorted(package.iterdir())


def main() -> int:
    generate(ROOT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
