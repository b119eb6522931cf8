"""README.md's module map names every module of the package, and no module that is gone."""

import itertools
import re
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "mjpeg_proxy"
README = PACKAGE_DIR.parent / "README.md"
MAP_START = "```text\nmjpeg_proxy/\n"


def module_map(readme: str) -> str:
    """The lines of ``readme``'s drawn tree under ``mjpeg_proxy/`` (indented ones)."""
    lines = readme[readme.index(MAP_START) + len(MAP_START) :].splitlines()
    return "\n".join(itertools.takewhile(lambda line: line.startswith(" "), lines))


def named_modules(tree_text: str) -> set[str]:
    """File names (``name.py``) a drawn tree mentions."""
    return set(re.findall(r"\b\w+\.py\b", tree_text))


def package_modules(package: Path) -> set[str]:
    """File names of the package's modules, ``__init__.py`` left out."""
    return {path.name for path in package.rglob("*.py") if path.name != "__init__.py"}


def test_the_readme_map_names_every_module_and_no_gone_one():
    named = named_modules(module_map(README.read_text(encoding="utf-8")))
    modules = package_modules(PACKAGE_DIR)
    assert modules - named == set(), "modules missing from README's map"
    assert named - modules == set(), "README's map names modules that do not exist"


def test_the_check_sees_a_missing_and_a_gone_module(tmp_path):
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    for name in ("pkg/__init__.py", "pkg/kept.py", "pkg/sub/__init__.py", "pkg/sub/new.py"):
        (tmp_path / name).write_text('"""A module."""\n')
    readme = "# x\n\n" + MAP_START + "  kept.py   here\n  old.py    gone\ntests/  also.py\n```\n"
    named = named_modules(module_map(readme))
    modules = package_modules(tmp_path / "pkg")
    assert modules - named == {"new.py"}
    assert named - modules == {"old.py"}
