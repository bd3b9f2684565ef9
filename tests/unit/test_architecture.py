"""The architecture's rules, read from the source (issue #14): each test names the offender.

1. The composition root (chalicelib/services.py) is the one place capabilities are built and wired: no module of
   chalicelib keeps process-wide state of its own, so no ``functools.lru_cache``/``cache`` (the settings reader,
   ``config.get_settings``, is the one exception) and no module-level instance of a chalicelib class (a router, a
   bus, a store...; instances of frozen dataclasses are constants, not state).
2. Only ``app.py`` and ``chalicelib/api.py`` import chalice: capabilities take and return plain values.
3. The capabilities (tokens, sessions, autoid, transfer) never import one another, not even inside a function:
   what one needs of another is handed over by the composition root.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CHALICELIB = REPO_ROOT / "chalicelib"
CAPABILITIES = ("tokens", "sessions", "autoid", "transfer")
CACHE_DECORATORS = {"lru_cache", "cache"}
# The settings reader, wherever the config package keeps it.
ALLOWED_CACHES = {("chalicelib/config.py", "get_settings"), ("chalicelib/config/environment.py", "get_settings")}
CHALICE_IMPORTERS = {"app.py", "chalicelib/api.py"}


def modules(root: Path = CHALICELIB) -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(root.rglob("*.py")):
        yield path.relative_to(REPO_ROOT).as_posix(), ast.parse(path.read_text(), filename=str(path))


def imported_modules(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Every module an import statement names, anywhere in the file (function-level imports included)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            # "from chalicelib import sessions" names the package through its alias.
            yield from ((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)


def decorator_name(decorator: ast.expr) -> str | None:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    if isinstance(target, ast.Attribute):
        return target.attr
    return target.id if isinstance(target, ast.Name) else None


def chalicelib_classes() -> tuple[set[str], set[str]]:
    """The names of chalicelib's classes, and of those that are frozen dataclasses (immutable values)."""
    classes, frozen = set(), set()
    for _path, tree in modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                classes.add(node.name)
                if any(_frozen_dataclass(d) for d in node.decorator_list):
                    frozen.add(node.name)
    return classes, frozen


def _frozen_dataclass(decorator: ast.expr) -> bool:
    return (
        isinstance(decorator, ast.Call)
        and decorator_name(decorator) == "dataclass"
        and any(k.arg == "frozen" and isinstance(k.value, ast.Constant) and k.value.value for k in decorator.keywords)
    )


def test_no_module_caches_but_the_settings_reader() -> None:
    offenders = []
    for path, tree in modules():
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            cached = [d for d in node.decorator_list if decorator_name(d) in CACHE_DECORATORS]
            if cached and (path, node.name) not in ALLOWED_CACHES:
                offenders.append(
                    f"{path}:{node.lineno} {node.name} is cached at module level (use chalicelib.services)"
                )
    assert offenders == []


def test_no_module_level_instance_of_a_chalicelib_class() -> None:
    classes, frozen = chalicelib_classes()
    offenders = []
    for path, tree in modules():
        for node in tree.body:
            value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
            for call in ast.walk(value) if value is not None else ():
                if not isinstance(call, ast.Call):
                    continue
                name = decorator_name(call.func) if isinstance(call.func, ast.Name | ast.Attribute) else None
                if name in classes and name not in frozen:
                    offenders.append(f"{path}:{node.lineno} module-level {name}(...): build it in chalicelib.services")
    assert offenders == []


def test_only_the_app_and_the_api_adapters_import_chalice() -> None:
    offenders = []
    for path, tree in [*modules(), ("app.py", ast.parse((REPO_ROOT / "app.py").read_text()))]:
        for line, module in imported_modules(tree):
            if (module == "chalice" or module.startswith("chalice.")) and path not in CHALICE_IMPORTERS:
                offenders.append(f"{path}:{line} imports {module}")
    assert offenders == []


@pytest.mark.parametrize("capability", CAPABILITIES)
def test_a_capability_never_imports_another(capability: str) -> None:
    others = [f"chalicelib.{other}" for other in CAPABILITIES if other != capability]
    offenders = []
    for path, tree in modules(CHALICELIB / capability):
        for line, module in imported_modules(tree):
            if any(module == other or module.startswith(f"{other}.") for other in others):
                offenders.append(f"{path}:{line} imports {module}")
    assert offenders == []
