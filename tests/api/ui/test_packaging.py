"""The dashboard's templates and static files ship inside the package."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from pathlib import Path

import api.ui

UI_DIR = Path(api.ui.__file__).parent
PYPROJECT = Path(__file__).resolve().parents[3] / "pyproject.toml"


def test_every_template_and_static_file_is_package_data() -> None:
    config = tomllib.loads(PYPROJECT.read_text())
    globs = config["tool"]["setuptools"]["package-data"]["api.ui"]
    files = [
        path.relative_to(UI_DIR).as_posix()
        for folder in ("templates", "static")
        for path in (UI_DIR / folder).rglob("*")
        if path.is_file()
    ]

    assert "static/htmx.min.js" in files and "templates/base.html" in files
    assert [f for f in files if not any(fnmatch(f, g) for g in globs)] == []
