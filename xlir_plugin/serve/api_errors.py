"""Errors the API answers with: an HTTP status and an OpenAI-style JSON body.

`{"error": {"message", "type", "code"}}` is what the `openai` client parses into its
exceptions (`BadRequestError`, `AuthenticationError`, `NotFoundError`, `RateLimitError`...),
so a client of either server handles both the same way. Messages never quote a request's
texts: they name the offending item by index.
"""

from __future__ import annotations

from starlette.responses import JSONResponse

#: status -> the OpenAI error type
TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "service_unavailable",
}


class ApiError(Exception):
    """A request the server refuses or cannot serve; `response()` is what the client gets."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        body = {
            "error": {
                "message": self.message,
                "type": TYPES.get(self.status, "invalid_request_error"),
                "code": self.code,
            }
        }
        return JSONResponse(body, status_code=self.status, headers=self.headers)
