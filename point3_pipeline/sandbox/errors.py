"""The one exception the sandbox's state raises for a request point3 would refuse."""


class ApiError(Exception):
    """`status` is the HTTP status (and envelope statusCode); the message goes to the caller."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message
