"""Errors that carry a message meant for a person: the CLI prints them as one line."""


class XlirError(Exception):
    """Base class: a problem the user can fix, described in one sentence."""


class ConnectionFailed(XlirError):
    """Elasticsearch could not be reached or refused our credentials."""


class ModelMismatch(XlirError):
    """An index was built for another model (dims or sha256 differ)."""


class InputError(XlirError):
    """Bad input text or documents: the message names the offending item."""
