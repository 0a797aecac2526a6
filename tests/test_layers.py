"""The import rule the tree states: services talk to each other over gRPC only, so no service
package imports another's; and `threadline/` (the shared layer below the services) imports no
service.

The arrows that break the rule today are listed in `KNOWN`, each with where it goes once the
storage layer below the services exists (docs: README, "Architecture"). The test fails on any
arrow not listed, so none can be added, and on a listed arrow that is gone, so the list only
shrinks and always says what is left to do.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (importing module's file, imported service package): why it is still here.
KNOWN = {
    ("services/store/reparse.py", "services.analysis"):
        "reparse is an offline job of the CLI, not of the store service",
    ("services/store/reparse.py", "services.ingest"):
        "reparse is an offline job of the CLI, not of the store service",
    ("threadline/cli.py", "services.analysis"): "the CLI moves above the services",
    ("threadline/cli.py", "services.ingest"): "the CLI moves above the services",
    ("threadline/cli.py", "services.store"): "the CLI moves above the services",
    ("threadline/cli.py", "services.*"): "the CLI moves above the services (`serve NAME`)",
}


def service_imports(path: Path) -> set[str]:
    """The service packages a module imports (`services.<name>`), statically or by a
    constant string handed to importlib."""
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.ImportFrom) and node.level > 0 and "services" in path.parts:
            raise AssertionError(f"{path}: relative imports hide the arrow; import absolutely")
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module"
              and node.args and isinstance(node.args[0], ast.JoinedStr)):
            head = node.args[0].values[0]
            if isinstance(head, ast.Constant) and str(head.value).startswith("services."):
                names = ["services.*"]
        for name in names:
            parts = name.split(".")
            if parts[0] == "services" and len(parts) > 1:
                found.add(f"services.{parts[1]}")
    return found


def arrows() -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for path in sorted((ROOT / "services").rglob("*.py")):
        own = f"services.{path.relative_to(ROOT).parts[1]}"
        out |= {(path.relative_to(ROOT).as_posix(), target)
                for target in service_imports(path) if target != own}
    for path in sorted((ROOT / "threadline").rglob("*.py")):
        if "v1" in path.relative_to(ROOT).parts:
            continue  # generated code
        out |= {(path.relative_to(ROOT).as_posix(), target) for target in service_imports(path)}
    return out


def test_no_new_arrow_between_services_or_from_the_shared_layer_to_a_service():
    new = arrows() - KNOWN.keys()
    assert not new, ("imports that break the layering (services talk over gRPC; threadline/ "
                     f"imports no service): {sorted(new)}")


def test_the_list_of_known_arrows_holds_only_arrows_that_still_exist():
    gone = KNOWN.keys() - arrows()
    assert not gone, f"no longer imported: remove from KNOWN: {sorted(gone)}"


def test_the_scan_sees_static_and_dynamic_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import services.store.writer\n"
                      "from services.ingest import parser\n"
                      "import importlib\n"
                      "importlib.import_module(f'services.{name}.server')\n")
    assert service_imports(module) == {"services.store", "services.ingest", "services.*"}
