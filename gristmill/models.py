"""The one base of every config and file model (unknown fields are errors, never silently ignored), and the
one way a config file is read and validated: every bad field reported at once, naming the file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from gristmill.errors import ConfigError


class StrictModel(BaseModel):
    """A pydantic model that refuses fields it does not declare (a typo in a recipe is an error)."""

    model_config = ConfigDict(extra="forbid")


class FrozenModel(StrictModel):
    """A StrictModel whose instances cannot be changed once validated (a run's settings)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError("must be lowercase letters, digits, '-' or '_', starting with a letter")
    return value


Name = Annotated[str, AfterValidator(_check_name)]
"""A name a recipe gives to a source or an evaluation set: it appears in paths, reasons and the manifest."""

M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], data: Any, path: str | None, what: str) -> M:
    """Validate `data` as `model`; raise ConfigError listing every bad field (path, message, what was given),
    not only the first."""
    if not isinstance(data, dict):
        raise ConfigError(f"{what} must be a mapping of settings, got {type(data).__name__}", path=path)
    try:
        return model.model_validate(data)
    except ValidationError as e:
        lines = []
        for error in e.errors():
            field = ".".join(str(p) for p in error["loc"]) or "(top level)"
            got = error.get("input")
            shown = "" if isinstance(got, dict | list) or error["type"] == "missing" else f" (got {got!r})"
            lines.append(f"  {field}: {error['msg']}{shown}")
        raise ConfigError(
            f"invalid {what} ({e.error_count()} problem(s))\n" + "\n".join(lines), path=path
        ) from None


def read_yaml(path: str, what: str) -> Any:
    """Read a YAML file; raise ConfigError when it is missing, unreadable or not YAML (with line, column)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} file not found", path=path) from None
    except (UnicodeDecodeError, IsADirectoryError) as e:
        raise ConfigError(f"cannot read the {what}: {e}", path=path) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"invalid YAML: {problem}", path=path, where=where) from None


def parse_override(text: str) -> tuple[str, Any]:
    """Parse a `--set key.path=value` command-line override; the value is read as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {text!r} is not of the form key.path=value")
    return key.strip(), yaml.safe_load(raw)


def apply_overrides(data: Any, overrides: dict[str, Any] | None) -> Any:
    """Set each dotted field path of `overrides` (e.g. `stages.0.tokens`: list items by index) in the parsed
    config mapping `data`, creating mappings on the way; return `data` (unchanged when it is no mapping).

    Raises ConfigError naming the path when it runs through a value that is neither mapping nor list, or an
    index the list does not have."""
    if not isinstance(data, dict):
        return data
    for dotted, value in (overrides or {}).items():
        node: Any = data
        keys = dotted.split(".")
        try:
            for key in keys[:-1]:
                node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
            if isinstance(node, list):
                node[int(keys[-1])] = value
            elif isinstance(node, dict):
                node[keys[-1]] = value
            else:
                raise TypeError(f"{type(node).__name__} has no fields")
        except (ValueError, IndexError, TypeError, AttributeError) as e:
            raise ConfigError(f"cannot set {dotted}: {e}", where=dotted) from None
    return data
