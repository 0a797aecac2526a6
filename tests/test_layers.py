"""The import rule the tree states: services talk to each other over gRPC only, so no service
package imports another's; `threadline/` (the shared layer below the services) imports no
service; and the CLI (`cli/`) sits above everything, so neither `threadline/` nor a service
imports it.

No import breaks the rule (docs: README, "Architecture"); the test fails on the first that
does.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def upward_imports(path: Path) -> set[str]:
    """The service packages (`services.<name>`) and the CLI (`cli`) a module imports,
    statically or by a constant string handed to importlib."""
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
            elif isinstance(head, ast.Constant) and str(head.value).startswith("cli."):
                names = ["cli"]
        for name in names:
            parts = name.split(".")
            if parts[0] == "services" and len(parts) > 1:
                found.add(f"services.{parts[1]}")
            elif parts[0] == "cli":
                found.add("cli")
    return found


def arrows() -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for path in sorted((ROOT / "services").rglob("*.py")):
        own = f"services.{path.relative_to(ROOT).parts[1]}"
        out |= {(path.relative_to(ROOT).as_posix(), target)
                for target in upward_imports(path) if target != own}
    for path in sorted((ROOT / "threadline").rglob("*.py")):
        if "v1" in path.relative_to(ROOT).parts:
            continue  # generated code
        out |= {(path.relative_to(ROOT).as_posix(), target) for target in upward_imports(path)}
    return out


def test_no_new_arrow_between_services_or_from_below_to_a_service_or_the_cli():
    new = arrows()
    assert not new, ("imports that break the layering (services talk over gRPC; threadline/ "
                     f"imports no service; nothing imports the CLI): {sorted(new)}")


def test_the_scan_sees_static_and_dynamic_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import services.store.writer\n"
                      "from services.ingest import parser\n"
                      "import importlib\n"
                      "importlib.import_module(f'services.{name}.server')\n")
    assert upward_imports(module) == {"services.store", "services.ingest", "services.*"}


def test_the_scan_sees_imports_of_the_cli(tmp_path):
    for line in ("import cli\n", "import cli.main\n", "from cli import reparse\n",
                 "from cli.db import reading\n",
                 "import importlib\nimportlib.import_module(f'cli.{name}')\n"):
        module = tmp_path / "m.py"
        module.write_text(line)
        assert upward_imports(module) == {"cli"}, line
    module.write_text("import click\nfrom client import x\n")
    assert upward_imports(module) == set()


# The functions that open a database, and the CLI modules allowed to call them: cli/db.py for
# every read, and reparse, a writer that opens the file exclusively under the writer's lock.
OPENERS = {"open_readonly", "create_engine", "connect"}
OPENS_THE_DATABASE = {"cli/db.py", "cli/reparse.py"}


def database_openers(path: Path) -> set[str]:
    """The storage-layer or driver functions a module calls to open a database."""
    found = set()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    # cli/db.py's own openers, imported by name, are the one place.
    through_cli_db = {alias.asname or alias.name for node in ast.walk(tree)
                      if isinstance(node, ast.ImportFrom) and node.module == "cli.db"
                      for alias in node.names}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if (node.func.attr in OPENERS and isinstance(owner, ast.Name)
                    and owner.id in {"readonly", "sqlalchemy", "sqlite3", "database"}):
                found.add(f"{owner.id}.{node.func.attr}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if (node.func.id in {"create_engine", "open_readonly"}
                    and node.func.id not in through_cli_db):
                found.add(node.func.id)
    return found


def test_the_cli_opens_the_database_in_one_place():
    opening = {path.relative_to(ROOT).as_posix(): database_openers(path)
               for path in sorted((ROOT / "cli").rglob("*.py"))}
    elsewhere = {name: calls for name, calls in opening.items()
                 if calls and name not in OPENS_THE_DATABASE}
    assert not elsewhere, f"open the database through cli/db.py instead: {elsewhere}"
    assert opening["cli/db.py"], "the scan no longer sees how cli/db.py opens the database"
