"""Errors of the export step: each carries a one-line message for the CLI."""

from __future__ import annotations

from xlir_plugin.errors import XlirError


class ExportInputError(XlirError):
    """Bad input to the export (missing directory, not an encoder, unknown option): exit 2."""


class ParityError(XlirError):
    """The exported model's vectors are too far from the torch model's: exit 1."""
