"""The one error type the API turns into ``{"error": ..., "status": ...}``."""


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
