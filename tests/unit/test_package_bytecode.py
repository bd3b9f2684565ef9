"""`make package`'s bytecode step (local/package_bytecode.py): every module of the deployment package gets bytecode
Python loads without checking timestamps, stale bytecode is dropped, and every other entry is kept as it was."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from local.package_bytecode import add_bytecode, main

TAG = sys.implementation.cache_tag


def package_of(path: Path, entries: dict[str, tuple[bytes, int]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, (data, mode) in entries.items():
            info = zipfile.ZipInfo(name, date_time=(2026, 12, 2, 10, 0, 1))
            info.external_attr = mode << 16
            archive.writestr(info, data)
    return path


# A package as chalice builds one: app.py and a chalicelib module it imports.
APP = {
    "app.py": (b"import chalicelib.mod\nANSWER = chalicelib.mod.VALUE\n", 0o644),
    "chalicelib/__init__.py": (b"", 0o644),
    "chalicelib/mod.py": (b"VALUE = 42\ndef where():\n    return where.__code__.co_filename\n", 0o644),
}


def test_each_module_gets_unchecked_hash_bytecode_and_the_rest_is_kept(tmp_path: Path) -> None:
    package = package_of(
        tmp_path / "deployment.zip",
        {
            **APP,
            "chalicelib/__pycache__/mod.cpython-311.pyc": (b"stale bytecode of the working tree", 0o644),
            "chalicelib/policy.json": (b'{"rules": []}', 0o600),
            "bin/tool": (b"#!/bin/sh\n", 0o755),
        },
    )
    before = {i.filename: (i.external_attr, i.date_time) for i in zipfile.ZipFile(package).infolist()}

    assert add_bytecode(package) == 3

    with zipfile.ZipFile(package) as archive:
        infos = {i.filename: i for i in archive.infolist()}
        for name in ("app.py", "chalicelib/__init__.py", "chalicelib/mod.py", "chalicelib/policy.json", "bin/tool"):
            assert (infos[name].external_attr, infos[name].date_time) == before[name]
        assert archive.read("chalicelib/policy.json") == b'{"rules": []}'
        assert sorted(n for n in infos if n.endswith(".pyc")) == sorted(
            [
                f"__pycache__/app.{TAG}.pyc",
                f"chalicelib/__pycache__/__init__.{TAG}.pyc",
                f"chalicelib/__pycache__/mod.{TAG}.pyc",
            ]
        )
        pyc = archive.read(f"chalicelib/__pycache__/mod.{TAG}.pyc")
    assert pyc[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(pyc[4:8], "little") == 0b01  # hash-based (PEP 552), source not checked
    assert b"stale bytecode" not in pyc


def test_the_package_runs_from_its_bytecode_alone(tmp_path: Path) -> None:
    """Unpacked as Lambda does, every source replaced by one that refuses to run: the bytecode answers."""
    package = package_of(tmp_path / "deployment.zip", APP)
    add_bytecode(package)
    task = tmp_path / "task"
    zipfile.ZipFile(package).extractall(task)
    for source in ("app.py", "chalicelib/mod.py"):
        (task / source).write_text("raise SystemExit('the source was compiled instead of the bytecode read')\n")
    done = subprocess.run(
        [sys.executable, "-B", "-c", "import app, chalicelib.mod as m; print(app.ANSWER, m.where())"],
        cwd=task,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["42", str(task / "chalicelib" / "mod.py")]  # tracebacks name the real file


def test_a_module_that_does_not_compile_leaves_the_package_as_it_was(tmp_path: Path) -> None:
    package = package_of(tmp_path / "deployment.zip", {"app.py": (b"def broken(:\n", 0o644)})
    before = package.read_bytes()
    assert main([str(package)]) == 1
    assert package.read_bytes() == before


@pytest.mark.parametrize("argv", [[], ["a.zip", "b.zip"]])
def test_usage_is_one_line_and_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == "usage: python -m local.package_bytecode DEPLOYMENT_ZIP"


def test_a_missing_or_broken_package_is_one_line_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "absent.zip")]) == 1
    (tmp_path / "broken.zip").write_bytes(b"not a zip")
    assert main([str(tmp_path / "broken.zip")]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2
    assert all(line.startswith("package_bytecode: ") for line in lines)
