"""The console's files (streams/api/static/, served by streams/api/console.py): everything the
page loads is shipped, and the package data of pyproject.toml takes every file."""

import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path

from streams.api.console import CONTENT_TYPES, load_assets

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "streams" / "api" / "static"


def test_every_file_the_page_loads_is_served():
    assets = load_assets()
    html = assets["index.html"][0].decode()
    wanted = set(re.findall(r'(?:src|href)="/console/([^"]+)"', html))
    for name, (body, _type) in assets.items():
        if name.endswith(".js"):
            wanted |= set(re.findall(r'from "\./([^"]+)"', body.decode()))
    assert {"main.js", "console.css"} <= wanted
    assert wanted <= set(assets), wanted - set(assets)


def test_the_package_data_takes_every_console_file():
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["streams.api"]
    files = [p.relative_to(STATIC.parent).as_posix() for p in STATIC.iterdir()]
    assert files and all(any(fnmatch(f, g) for g in globs) for f in files), files
    assert all(p.suffix in CONTENT_TYPES for p in STATIC.iterdir())
