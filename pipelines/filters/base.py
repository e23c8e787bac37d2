"""The one contract every rule set implements: per text, keep (None) or the reason to drop it."""

from __future__ import annotations

from abc import ABC, abstractmethod


class DocumentFilter(ABC):
    """A rule set: `check_batch` returns, per text, None to keep it or "<name>:<rule>" to drop it.

    Verdicts are pure functions of each text (the same text always gets the same verdict, whatever else is
    in the batch); rules are tried in a fixed order and the first that fails names the reason.
    """

    name: str

    @abstractmethod
    def check_batch(self, texts: list[str], paths: list[str | None] | None = None) -> list[str | None]:
        """Return one verdict per text: None to keep, or "<name>:<rule>" naming the first failed rule.

        `paths` are the documents' file paths where the source knows them (Starcoderdata's repo paths); rule
        sets that judge by file type use them, the others ignore them.
        """

    def reason(self, rule: str) -> str:
        """Return the drop reason for `rule` of this rule set."""
        return f"{self.name}:{rule}"
