"""A fingerprint of the code behind a result, for cache and checkpoint keys.

`minigen.pipeline` names the code each stage runs; hashing it here means that editing
the training loop misses the evaluation cache and every checkpoint without a person
remembering to bump a version number. The hash is over each module's syntax tree without
docstrings, so editing a comment or a docstring keeps every cached result.
"""

from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]  # the `minigen` folder


def module_files(paths: tuple[str, ...], root: Path = PACKAGE.parent) -> list[Path]:
    """The .py files that `paths` (files or folders, relative to `root`, the project) name, sorted."""
    files: set[Path] = set()
    for path in paths:
        target = root / path
        files.update(sorted(target.rglob("*.py")) if target.is_dir() else [target])
    return sorted(files)


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list) and body and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return tree


@lru_cache(maxsize=None)
def fingerprint(paths: tuple[str, ...]) -> str:
    """sha256 over the code of `paths`: changes with the code, not with comments or docstrings."""
    digest = hashlib.sha256()
    root = PACKAGE.parent
    for file in module_files(paths):
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        digest.update(source_digest(file.read_text(encoding="utf-8")).encode())
    return digest.hexdigest()


def source_digest(source: str) -> str:
    """sha256 of a module's syntax tree: blind to comments, docstrings and layout."""
    tree = _without_docstrings(ast.parse(source))
    return hashlib.sha256(ast.dump(tree, include_attributes=False).encode()).hexdigest()
