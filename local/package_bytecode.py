"""`make package`'s last step: bytecode for every module of the deployment package, so a cold start reads it.

Lambda unpacks the package into ``/var/task``, which is read-only: Python cannot write the bytecode it compiles
there, so a package of sources only is compiled anew at every cold start (~100 ms for credport's own modules on a
2-core machine, more with its dependencies; bench/README.md). ``chalice package`` ships sources: the dependencies'
wheels unpacked without their bytecode, ``app.py`` and ``chalicelib/`` as they are in the working tree (with whatever
``__pycache__`` it holds, compiled against the tree's timestamps, which the zip does not keep to the second).

This replaces every ``__pycache__`` entry of ``deployment.zip`` by bytecode compiled with this interpreter in
unchecked-hash mode (PEP 552): Python loads it without comparing timestamps, the right mode for files that never
change (the import system names each module's real path in its tracebacks). Bytecode is only read by the Python it
was compiled for (``chalice package`` picks the Lambda runtime of this interpreter's version); any other ignores it.

    python -m local.package_bytecode build/package/deployment.zip
"""

from __future__ import annotations

import compileall
import py_compile
import sys
import tempfile
import zipfile
from pathlib import Path

__all__ = ["add_bytecode", "main"]


def add_bytecode(package: Path) -> int:
    """Rewrite ``package`` with fresh bytecode for each of its modules; the number of modules compiled."""
    with tempfile.TemporaryDirectory(prefix="credport-bytecode-") as scratch:
        root = Path(scratch) / "task"
        with zipfile.ZipFile(package) as source:
            kept = [info for info in source.infolist() if "__pycache__/" not in info.filename]
            for info in kept:
                source.extract(info, root)
            contents = {info.filename: source.read(info) for info in kept}
        ok = compileall.compile_dir(
            root,
            quiet=1,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
        if not ok:
            raise RuntimeError(f"{package}: a module of the package does not compile")
        compiled = sorted(p for p in root.rglob("__pycache__/*.pyc") if p.is_file())
        rewritten = package.with_suffix(".tmp")
        with zipfile.ZipFile(rewritten, "w", zipfile.ZIP_DEFLATED) as target:
            for info in kept:  # every entry as it was: name, permissions, time
                target.writestr(info, contents[info.filename])
            for path in compiled:
                target.write(path, path.relative_to(root).as_posix())
        rewritten.replace(package)
    return len(compiled)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m local.package_bytecode DEPLOYMENT_ZIP", file=sys.stderr)
        return 2
    package = Path(args[0])
    try:
        count = add_bytecode(package)
    except (OSError, zipfile.BadZipFile, RuntimeError) as error:
        print(f"package_bytecode: {error}", file=sys.stderr)
        return 1
    print(f"{package}: bytecode for {count} modules (unchecked-hash, {sys.implementation.cache_tag})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
