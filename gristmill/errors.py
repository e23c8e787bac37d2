"""User-facing errors: each names the file, the place in it (line, row or field) and what was expected."""

from __future__ import annotations


class GristmillError(Exception):
    """An error meant for a person: says where (file, line/field) and what was expected.

    The CLI prints these without a traceback; anything else is a bug and keeps its traceback.
    """

    def __init__(
        self, message: str, *, path: str | None = None, where: str | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.where = where
        self.hint = hint

    def __str__(self) -> str:
        place = ":".join(str(p) for p in (self.path, self.where) if p is not None)
        text = f"{place}: {self.message}" if place else self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def __reduce__(self):  # keep the fields when Ray or multiprocessing pickles the error
        return (_rebuild, (type(self), self.message, self.path, self.where, self.hint))


def _rebuild(cls, message, path, where, hint):
    return cls(message, path=path, where=where, hint=hint)


class ConfigError(GristmillError):
    """A recipe or config file is missing, unparsable, or fails validation."""


class InputError(GristmillError):
    """An input data file or record cannot be read as the expected layout."""


class BuildError(GristmillError):
    """A build cannot go on (inconsistent outputs, failed tasks, a mismatched resume)."""
