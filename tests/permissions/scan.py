"""What the Lambda code says about its AWS calls, read from its syntax tree (never imported or run here).

- :func:`aws_call_sites`: every ``aws_call(service, operation)``, with the function around it.
- :func:`bypasses`: every way to reach AWS without one: boto3/botocore imported or a client made outside the adapters,
  a client method (a paginator's ``paginate``, ``generate_presigned_url`` included) called outside an ``aws_call``
  naming that very operation, an operation botocore does not know.
- :func:`definitions` / :func:`references`: which functions exist and which names each one uses, to hold the
  catalog's code paths to the code.

The Lambda code is ``app.py`` and ``chalicelib/``; the adapters are ``chalicelib/aws/``.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from tests.permissions.model import REPO_ROOT

__all__ = [
    "CLIENT_SERVICES",
    "Modules",
    "Site",
    "aws_call_sites",
    "bypasses",
    "definitions",
    "lambda_code_uses",
    "parse_modules",
    "references",
]

ADAPTERS = "chalicelib.aws"
# aws_call names the IAM service prefix; botocore names the client. Where they differ:
CLIENT_SERVICES = {"tag": "resourcegroupstaggingapi"}
_BOTO = ("boto3", "botocore", "aiobotocore", "aioboto3")
_CLIENT_MAKERS = frozenset({"client", "create_client", "resource", "get_paginator", "generate_presigned_url"})


@dataclass(frozen=True)
class Site:
    service: str
    operation: str
    function: str  # qualified name of the function holding the call, e.g. chalicelib.aws.s3.ObjectStore.get
    location: str  # path:line


Modules = Mapping[str, tuple[str, ast.Module]]  # module name -> (path, syntax tree)


def parse_modules(sources: Mapping[str, str]) -> Modules:
    """Modules from their source, by path relative to the repository (``chalicelib/aws/s3.py``)."""
    found = {}
    for path, source in sources.items():
        parts = path.removesuffix(".py").split("/")
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = (path, ast.parse(source, filename=path))
    return found


@functools.cache
def _modules() -> Modules:
    paths = [REPO_ROOT / "app.py", *sorted((REPO_ROOT / "chalicelib").rglob("*.py"))]
    return parse_modules({str(p.relative_to(REPO_ROOT)): p.read_text() for p in paths})


def _functions(module: str, tree: ast.Module) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Module-level functions and methods (nested functions belong to the one around them)."""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield f"{module}.{node.name}", node
        elif isinstance(node, ast.ClassDef):
            for member in node.body:
                if isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef):
                    yield f"{module}.{node.name}.{member.name}", member


@functools.cache
def definitions() -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    return {name: node for module, (_, tree) in _modules().items() for name, node in _functions(module, tree)}


@functools.cache
def references(qualname: str) -> frozenset[str]:
    """Every identifier and attribute name the function's body uses (its nested functions included)."""
    names: set[str] = set()
    for node in ast.walk(definitions()[qualname]):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
    return frozenset(names)


def _aws_call(node: ast.AST) -> tuple[str, str] | str | None:
    """``(service, operation)`` for an ``aws_call(...)`` with literal names, a problem text for a computed one."""
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
    if name != "aws_call":
        return None
    args = node.args
    if len(args) == 2 and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in args):
        return str(args[0].value), str(args[1].value)  # type: ignore[attr-defined]
    return "aws_call with a computed service or operation: the catalog cannot follow it"


def aws_call_sites(modules: Modules | None = None) -> tuple[list[Site], list[str]]:
    """Every aws_call site, and the problems (computed names) found on the way."""
    sites, problems = [], []
    for module, (path, tree) in (modules or _modules()).items():
        for qualname, function in _functions(module, tree):
            for node in ast.walk(function):
                found = _aws_call(node)
                line = getattr(node, "lineno", 0)
                if isinstance(found, tuple):
                    sites.append(Site(found[0], found[1], qualname, f"{path}:{line}"))
                elif isinstance(found, str):
                    problems.append(f"{path}:{line}: {found}")
    return sites, problems


def _xform(operation: str) -> str:
    from botocore import xform_name

    return str(xform_name(operation))


@functools.cache
def _operations(service: str) -> frozenset[str]:
    import botocore.session

    model = botocore.session.get_session().get_service_model(CLIENT_SERVICES.get(service, service))
    return frozenset(model.operation_names)


def _is_client(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "_client") or (
        isinstance(node, ast.Name) and node.id == "client"
    )


class _AdapterVisitor(ast.NodeVisitor):
    """Client calls of one adapter function, each checked against the aws_call around it."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.active: list[tuple[str, str]] = []
        self.paginators: dict[str, str] = {}  # variable -> the botocore method it paginates
        self.problems: list[str] = []

    def visit_With(self, node: ast.With) -> None:
        entered = [c for c in (_aws_call(i.context_expr) for i in node.items) if isinstance(c, tuple)]
        for item in node.items:
            self.visit(item.context_expr)
        self.active.extend(entered)
        for statement in node.body:
            self.visit(statement)
        del self.active[len(self.active) - len(entered) :]

    def visit_Assign(self, node: ast.Assign) -> None:
        value = node.value
        if (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.Attribute)
            and value.func.attr == "get_paginator"
            and value.args
            and isinstance(value.args[0], ast.Constant)
        ):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    self.paginators[target.id] = str(value.args[0].value)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute):
            if _is_client(func.value):
                self._client_call(node, func.attr)
            elif isinstance(func.value, ast.Name) and func.value.id in self.paginators and func.attr == "paginate":
                self._check(node, self.paginators[func.value.id], "paginator")
        self.generic_visit(node)

    def _client_call(self, node: ast.Call, method: str) -> None:
        first = node.args[0] if node.args else None
        literal = str(first.value) if isinstance(first, ast.Constant) else None
        if method == "get_paginator":
            if literal is None:
                self.problems.append(f"{self.where}:{node.lineno}: get_paginator with a computed operation")
            return  # checked where the paginator is used
        if method == "generate_presigned_url":
            if literal is None:
                self.problems.append(f"{self.where}:{node.lineno}: generate_presigned_url with a computed operation")
                return
            self._check(node, literal, "presign")
            return
        self._check(node, method, "call")

    def _check(self, node: ast.Call, method: str, kind: str) -> None:
        for _service, operation in self.active:
            wanted = operation.removeprefix("Presign") if kind == "presign" else operation
            if _xform(wanted) == method:
                return
        shown = {"paginator": f'get_paginator("{method}").paginate', "presign": f'generate_presigned_url("{method}")'}
        call = shown.get(kind, f"client.{method}")
        self.problems.append(f"{self.where}:{node.lineno}: {call}(...) outside an aws_call naming that operation")


def bypasses(modules: Modules | None = None) -> list[str]:
    """Every AWS access of the Lambda code that does not go through an adapter's aws_call (there should be none)."""
    modules = modules or _modules()
    problems: list[str] = []
    sites, computed = aws_call_sites(modules)
    problems += computed
    for site in sites:
        presign = site.operation.startswith("Presign") and site.service == "s3"
        operation = site.operation.removeprefix("Presign") if presign else site.operation
        if operation not in _operations(site.service):
            problems.append(
                f"{site.location}: aws_call({site.service!r}, {site.operation!r}) names no botocore operation"
            )
    for module, (path, tree) in modules.items():
        adapter = module == ADAPTERS or module.startswith(ADAPTERS + ".")
        if adapter:
            for _, function in _functions(module, tree):
                visitor = _AdapterVisitor(path)
                visitor.visit(function)
                problems += visitor.problems
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                imported = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                if any(m.split(".")[0] in _BOTO for m in imported):
                    problems.append(f"{path}:{node.lineno}: imports {imported[0]} outside chalicelib/aws")
            elif isinstance(node, ast.Attribute) and node.attr == "_client":
                problems.append(f"{path}:{node.lineno}: reaches an adapter's client (._client)")
            elif (
                isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _CLIENT_MAKERS
            ):
                problems.append(f"{path}:{node.lineno}: .{node.func.attr}(...) outside chalicelib/aws")
    return problems


def lambda_code_uses(pattern: str, modules: Modules | None = None) -> list[str]:
    """Where the Lambda code outside the adapters matches ``name:X``, ``attr:X`` or ``call:M(K=)``."""
    kind, _, what = pattern.partition(":")
    method, _, keyword = what.partition("(")
    keyword = keyword.rstrip("=)")
    found = []
    for module, (path, tree) in (modules or _modules()).items():
        if module == ADAPTERS or module.startswith(ADAPTERS + "."):
            continue
        for node in ast.walk(tree):
            hit = (
                (kind == "name" and isinstance(node, ast.Name) and node.id == what)
                or (kind == "name" and isinstance(node, ast.alias) and what in (node.name.split(".")[-1], node.asname))
                or (kind == "attr" and isinstance(node, ast.Attribute) and node.attr == what)
                or (
                    kind == "call"
                    and isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == method
                    and any(k.arg == keyword for k in node.keywords)
                )
            )
            if hit:
                found.append(f"{path}:{getattr(node, 'lineno', '?')}")
    return found
