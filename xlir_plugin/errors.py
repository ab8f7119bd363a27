"""Errors that carry a message meant for a person: the CLI prints them as one line.

A message names what the caller gave in the caller's own words. Where it names an argument,
it writes `{targets}` or `{targets=en,es}` and lists the name in `arguments`: a Python caller
reads `targets` / `targets='en,es'`, the command line (which knows the flag behind each
argument) reads `--target` / `--target en,es`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

_PLACEHOLDER = re.compile(r"\{(\w+)(?:=([^{}]*))?\}")


class XlirError(Exception):
    """Base class: a problem the user can fix, described in one sentence."""

    def __init__(self, message: str, *, arguments: Sequence[str] = ()) -> None:
        self.template = message
        self.arguments = tuple(arguments)
        super().__init__(self.spelled({}))

    def spelled(self, flags: Mapping[str, str]) -> str:
        """The message with each named argument spelled as its flag in `flags`, or else as the
        Python argument it is."""

        def spell(match: re.Match[str]) -> str:
            name, value = match.groups()
            if name not in self.arguments:
                return match.group(0)
            if name in flags:
                return flags[name] if value is None else f"{flags[name]} {value}"
            return name if value is None else f"{name}={value!r}"

        return _PLACEHOLDER.sub(spell, self.template)


class ConnectionFailed(XlirError):
    """Elasticsearch could not be reached or refused our credentials."""


class ModelMismatch(XlirError):
    """An index was built for another model (dims or sha256 differ)."""


class InputError(XlirError):
    """Bad input text or documents: the message names the offending item."""
