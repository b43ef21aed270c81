"""Reading a params file's text, and pydantic's errors as one line.

YAML without duplicate keys (PyYAML keeps the last silently) or deep nesting (its
composer recurses), and every refusal one line naming the setting, with a short repr of
what the user wrote, safe on huge, deep or self-containing values.
"""

import difflib
import os
import reprlib
from typing import Any, Mapping

import yaml
from pydantic import BaseModel, ValidationError

from minigen.errors import UserError

MAX_DEPTH = 8  # sections hold lists at most (depth 3); PyYAML's composer recurses

class Loader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing duplicate keys (it keeps the last silently) and
    nesting deeper than MAX_DEPTH (its composer recurses: RecursionError otherwise)."""

    _depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base` may be overridden by later keys: that is its purpose
            key = self.construct_object(key_node, deep=True)
            marker = (type(key), key)
            try:
                duplicate = marker in seen
            except TypeError:
                continue  # an unhashable key: the base class refuses it
            if duplicate:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {show(key)}",
                                                        key_node.start_mark)
            seen.add(marker)
        return super().construct_mapping(node, deep)


def parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=Loader)  # noqa: S506 (a SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = exc.problem or exc.context or "parse error"
        raise UserError(flat(f"{source}: not valid YAML: {problem}{where}")) from None
    except yaml.reader.ReaderError as exc:
        raise UserError(f"{source}: not valid YAML: unacceptable character #x{exc.character:04x} "
                        f"at offset {exc.position}") from None
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: a date like 2024-13-01, a 5000-digit int
        raise UserError(flat(f"{source}: not valid YAML: {exc}")) from None


# ---------------------------------------------------------------- one line per refusal

_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 60
_repr.maxlist = _repr.maxdict = 8
_repr.maxlevel = 3


def show(value: Any) -> str:
    """A short one-line repr, safe on huge, deep or self-containing values."""
    return flat(_repr.repr(value))


def flat(text: str) -> str:
    return " ".join(text.splitlines())


def show_name(path: str | os.PathLike) -> str:
    name = os.fspath(path)
    return name if isinstance(name, str) and name.isprintable() else show(name)


def one_line(exc: ValidationError, tree: Any, root: type[BaseModel]) -> str:
    """The first problem, in words; pydantic's own text spans lines and names no file."""
    errors = exc.errors(include_url=False)
    named = {tuple(_setting(error["loc"], root)[0]) for error in errors}
    more = f" (and {len(named) - 1} more)" if len(named) > 1 else ""
    return _describe(errors[0], tree, root) + more


def _setting(loc: tuple, root: type[BaseModel]) -> tuple[list[str], Any]:
    """The setting an error location points into, and its field (None: a section)."""
    names, model, field = [], root, None
    for part in loc:
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            break
        names.append(part)
        field = model.model_fields[part]
        kind = field.annotation
        model = kind if isinstance(kind, type) and issubclass(kind, BaseModel) else None
    return names, (None if model is not None else field)


def _describe(error: dict, tree: Any, root: type[BaseModel]) -> str:
    names, field = _setting(error["loc"], root)
    name, kind, rest = ".".join(names) or "params", error["type"], error["loc"][len(names):]
    if kind == "invalid_key":
        return f"setting names must be text, got {show(rest[0])} in {name}"
    if kind == "extra_forbidden":
        key = rest[0] if isinstance(rest[0], str) and rest[0].isidentifier() else show(rest[0])
        return f"unknown setting {'.'.join([*names, key])}{did_you_mean(root, names, rest[0])}"
    if field is None and kind == "model_type":
        return f"{name} must be a section (a mapping of settings), got {show(error['input'])}"
    if field is None:  # a check across a section's settings: its message says it all
        return flat(str(error.get("ctx", {}).get("error", error["msg"])))
    return f"{name} must be {field.description}, got {show(_lookup(tree, names, error['input']))}"


def did_you_mean(root: type[BaseModel], names: list[str], wrong: Any) -> str:
    model = root
    for name in names:
        model = model.model_fields[name].annotation
    close = difflib.get_close_matches(wrong, list(model.model_fields), n=1) if isinstance(wrong, str) else []
    return f" (did you mean {'.'.join([*names, close[0]])}?)" if close else ""


def _lookup(tree: Any, names: list[str], fallback: Any) -> Any:
    """The value the user wrote for the setting `names` (a whole list, not one item)."""
    for name in names:
        if not isinstance(tree, Mapping) or name not in tree:
            return fallback
        tree = tree[name]
    return tree
