"""The Python client's feature modules import one way (messenger_client/client.py lists them):
a module imports only modules below it, so no feature reaches up into another."""

import ast
from pathlib import Path

import messenger_client

PACKAGE = Path(messenger_client.__file__).parent
# Top to bottom; cli, __init__ and __main__ sit above all of them.
LAYERS = [
    "client",
    "groups",
    "inbox",
    "outbox",
    "receipts",
    "keys",
    "contacts",
    "linking",
    "devices",
    "account",
    "transport",
    "http",
    "events",
    "tasks",
    "store",
    "errors",
    "protocol",
]


def imported(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names.add((node.module or "").split(".")[0])
        elif isinstance(node, ast.ImportFrom | ast.Import):
            modules = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            names.update(m.split(".")[1] for m in modules if m and m.startswith("messenger_client."))
    return names


def test_every_module_is_in_a_layer():
    modules = {path.stem for path in PACKAGE.glob("*.py")} | {"protocol"}
    assert modules - {"cli", "__init__", "__main__"} == set(LAYERS)


def test_modules_import_only_modules_below_them():
    for index, module in enumerate(LAYERS[:-1]):
        upward = imported(module) - set(LAYERS[index + 1 :])
        assert not upward, f"messenger_client/{module}.py imports {sorted(upward)} (not below it)"
