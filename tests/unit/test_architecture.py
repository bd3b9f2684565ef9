"""The architecture's rules, read from the source (issue #14): each test names the offender.

1. The composition root (chalicelib/services.py) is the one place capabilities are built and wired: no module of
   chalicelib keeps process-wide state of its own, so no ``functools.lru_cache``/``cache`` (the settings reader,
   ``config.get_settings``, is the one exception) and no module-level instance of a chalicelib class (a router, a
   bus, a store...; instances of frozen dataclasses are constants, not state).
2. Only ``app.py`` and the chalice adapters (``chalicelib/api.py``, ``chalicelib/dispatch.py``) import chalice:
   capabilities take and return plain values.
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
ALLOWED_CACHES = {("chalicelib/config/environment.py", "get_settings")}
# Module-level names bound to something other than a constant, each for a reason: Powertools' Logger and credport's
# EMF writer are meant to be one per process (the writer buffers until the invocation middleware flushes it), and the
# function an invocation runs as is a context variable, so each thread and task has its own.
ALLOWED_MODULE_STATE = {
    ("chalicelib/observability.py", "logger"),
    ("chalicelib/observability.py", "metrics"),
    ("chalicelib/aws/clients.py", "running_function"),
}
CHALICE_IMPORTERS = {"app.py", "chalicelib/api.py", "chalicelib/dispatch.py"}


def modules(root: Path = CHALICELIB) -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(root.rglob("*.py")):
        yield path.relative_to(REPO_ROOT).as_posix(), ast.parse(path.read_text(), filename=str(path))


def imported_modules(tree: ast.AST, path: str = "") -> Iterator[tuple[int, str]]:
    """Every module an import statement names, anywhere in the file (function-level imports included); a relative
    import is resolved against ``path`` (the importing file, relative to the repository)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node, path)
            if module:
                yield node.lineno, module
                # "from chalicelib import sessions" names the package through its alias.
                yield from ((node.lineno, f"{module}.{alias.name}") for alias in node.names)


def _absolute(node: ast.ImportFrom, path: str) -> str:
    if node.level == 0:
        return node.module or ""
    package = path.removesuffix(".py").split("/")[:-1]  # the importing module's package
    base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
    return ".".join([*base, *([node.module] if node.module else [])])


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
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if value is not None else []
            if any(isinstance(t, ast.Name) and (path, t.id) in ALLOWED_MODULE_STATE for t in targets):
                continue
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
        for line, module in imported_modules(tree, path):
            if (module == "chalice" or module.startswith("chalice.")) and path not in CHALICE_IMPORTERS:
                offenders.append(f"{path}:{line} imports {module}")
    assert offenders == []


@pytest.mark.parametrize("capability", CAPABILITIES)
def test_a_capability_never_imports_another(capability: str) -> None:
    others = [f"chalicelib.{other}" for other in CAPABILITIES if other != capability]
    offenders = []
    for path, tree in modules(CHALICELIB / capability):
        for line, module in imported_modules(tree, path):
            if any(module == other or module.startswith(f"{other}.") for other in others):
                offenders.append(f"{path}:{line} imports {module}")
    assert offenders == []


def test_no_module_level_state_but_the_allowed() -> None:
    """A module-level name bound to anything but a constant (a literal, a frozen value, a compiled pattern, a policy
    registry, a table named in capitals) is process-wide state: it belongs in the composition root."""
    _classes, frozen = chalicelib_classes()
    offenders = []
    for path, tree in modules():
        for node in tree.body:
            if isinstance(node, ast.Assign):
                targets, value = node.targets, node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                targets, value = [node.target], node.value
            else:
                continue
            for target in targets:
                if not isinstance(target, ast.Name) or _constant(target.id, value, frozen):
                    continue
                if (path, target.id) not in ALLOWED_MODULE_STATE:
                    offenders.append(f"{path}:{node.lineno} {target.id} is module-level state")
    assert offenders == []


# Calls whose result never changes: immutable builders, compiled patterns, joserfc's registries (the algorithm
# policy, configured once), type-level helpers.
_CONSTANT_CALLS = {
    "frozenset", "tuple", "compile", "fromhex", "TypeVar", "ParamSpec", "NewType", "MappingProxyType", "field",
    "JWSRegistry", "JWERegistry", "maketrans",
}  # fmt: skip


def _constant(name: str, value: ast.expr, frozen: set[str]) -> bool:
    if isinstance(
        value, ast.Constant | ast.Name | ast.Attribute | ast.Subscript | ast.BinOp | ast.UnaryOp | ast.Lambda
    ):
        return True  # literals, aliases of other names, type expressions, arithmetic on constants
    if isinstance(value, ast.Tuple):
        return all(_constant(name, item, frozen) for item in value.elts)
    if isinstance(value, ast.Dict | ast.List | ast.Set | ast.DictComp | ast.ListComp | ast.SetComp):
        # A table the module reads (capitals, by convention) or module metadata (__all__); a lower-case one is state.
        return name.lstrip("_").isupper() or (name.startswith("__") and name.endswith("__"))
    if isinstance(value, ast.Call):
        called = decorator_name(value.func) if isinstance(value.func, ast.Name | ast.Attribute) else None
        return called in _CONSTANT_CALLS or called in frozen
    return False
