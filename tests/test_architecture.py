"""The server's packages form layers, and no module imports from a layer above its own.

    messenger (platform) < realtime < accounts < contacts < groups < keys < chat < composition root

The platform is every module of messenger/ except the composition root (messenger.settings,
.urls, .asgi, .wsgi), which wires everything together and may import anything. A module may
import its own package and the packages below it: so the apps' import graph is a DAG (see
docs/ARCHITECTURE.md, "Module map"). Cross-app effects go the other way through
realtime.bus (publish on commit), never by importing the app above.

Every `import` statement counts, at module level and inside functions (a deferred import is
still a dependency); tests and migrations are exempt. The server never imports the test
helpers (tests/) or the terminal client (messenger_client/).
"""

import ast
import tomllib
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parents[1]

# Lowest first.
LAYERS = ["messenger", "realtime", "accounts", "contacts", "groups", "keys", "chat"]
COMPOSITION_ROOT = {"messenger.settings", "messenger.urls", "messenger.asgi", "messenger.wsgi"}
APPS = {"accounts", "contacts", "groups", "keys", "chat"}

# Imports that break the layering and are being removed elsewhere: (importing module, imported
# module). Each entry must still exist, so a fixed one cannot linger here.
KNOWN_VIOLATIONS: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the imported module (or package)
    where: str  # path:line

    def __str__(self) -> str:
        return f"{self.where}: {self.module} imports {self.target}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def server_modules() -> dict[str, Path]:
    modules = {}
    for package in LAYERS:
        for path in sorted((ROOT / package).rglob("*.py")):
            if {"tests", "migrations"} & set(path.relative_to(ROOT).parts):
                continue
            modules[module_name(path)] = path
    return modules


def is_local(name: str) -> bool:
    """A package or module of this repository (as opposed to the standard library or a
    dependency)."""
    top = name.split(".")[0]
    return (ROOT / top).is_dir() or (ROOT / f"{top}.py").is_file()


def imports_of(module: str, path: Path, known: set[str]) -> list[Import]:
    """Every import of a local module in `path`, at any depth of the syntax tree. `from a
    import b` counts as importing `a.b` when that is a module, else `a`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        where = f"{path.relative_to(ROOT)}:{node.lineno}"
        found += [Import(module, target, where) for target in dict.fromkeys(targets) if is_local(target)]
    return found


def all_imports() -> list[Import]:
    modules = server_modules()
    known = set(modules) | COMPOSITION_ROOT
    return [found for module, path in modules.items() for found in imports_of(module, path, known)]


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def layer(name: str) -> int | None:
    """The layer of a module; None for a local module outside the server."""
    if any(within(name, root) for root in COMPOSITION_ROOT):
        return len(LAYERS)
    top = name.split(".")[0]
    return LAYERS.index(top) if top in LAYERS else None


def layer_name(name: str) -> str:
    index = layer(name)
    return "the composition root" if index == len(LAYERS) else f"{LAYERS[index]} (layer {index})"


def violations() -> list[Import]:
    found = []
    for imported in all_imports():
        if (imported.module, imported.target) in KNOWN_VIOLATIONS:
            continue
        source, target = layer(imported.module), layer(imported.target)
        if target is None or target > source:
            found.append(imported)
    return found


def explain(imported: Import) -> str:
    if layer(imported.target) is None:
        return f"{imported}, which is not part of the server"
    return f"{imported}: {layer_name(imported.module)} may not import {layer_name(imported.target)}"


def test_no_server_module_imports_a_layer_above_its_own():
    found = violations()
    assert not found, "Imports against the layering (see this file's docstring):\n" + "\n".join(map(explain, found))


def test_every_known_violation_still_exists():
    pairs = {(imported.module, imported.target) for imported in all_imports()}
    gone = sorted(KNOWN_VIOLATIONS - pairs)
    assert not gone, f"Fixed, delete from KNOWN_VIOLATIONS in {Path(__file__).name}: {gone}"


def test_realtime_imports_no_app():
    found = [
        imported
        for imported in all_imports()
        if within(imported.module, "realtime")
        and any(within(imported.target, app) for app in APPS)
        and (imported.module, imported.target) not in KNOWN_VIOLATIONS
    ]
    assert not found, "realtime is the engine under the apps:\n" + "\n".join(map(str, found))


def test_the_platform_imports_no_app_and_not_realtime():
    found = [
        imported
        for imported in all_imports()
        if layer(imported.module) == 0 and any(within(imported.target, other) for other in [*APPS, "realtime"])
    ]
    assert not found, "messenger's platform modules are under everything:\n" + "\n".join(map(str, found))


def test_every_app_of_this_repository_has_a_layer():
    local_apps = {app.split(".")[0] for app in settings.INSTALLED_APPS if is_local(app)}
    assert local_apps, "no local app found in INSTALLED_APPS"
    assert local_apps <= set(LAYERS), f"give these apps a layer in LAYERS: {sorted(local_apps - set(LAYERS))}"


def test_pytest_collects_every_packages_tests():
    """A package's tests/ folder outside pytest's `testpaths` never runs, in CI or anywhere
    (the groups app's did not, for a while)."""
    configured = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["testpaths"])
    with_tests = {path.parent.name for path in ROOT.glob("*/tests") if path.is_dir()}
    assert with_tests <= configured, sorted(with_tests - configured)


def test_the_check_sees_deferred_and_relative_imports(tmp_path, monkeypatch):
    """The parser itself: an import inside a function and a relative one are found."""
    package = tmp_path / "contacts"
    package.mkdir()
    (package / "__init__.py").write_text("")
    source = package / "services.py"
    source.write_text("def later():\n    from chat import events\n\nfrom . import models\nimport keys.services\n")
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    for name in ("chat", "keys"):
        (tmp_path / name).mkdir()
    found = {(imported.target, imported.where) for imported in imports_of("contacts.services", source, set())}
    assert found == {
        ("chat", "contacts/services.py:2"),
        ("contacts", "contacts/services.py:4"),
        ("keys.services", "contacts/services.py:5"),
    }
