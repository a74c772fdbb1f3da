"""The one exception tree of modelhost.

Every error a client can see is a :class:`ModelhostError`; each class carries the HTTP status and
a stable machine-readable ``code``. The API layer turns any of them into
``{"error": message, "code": code}`` with that status, so nothing below the routes knows HTTP.

    ModelhostError (500 internal)
    ├── BadRequest (400 bad_request)
    │   ├── InvalidTensor (400 invalid_tensor)
    │   ├── InvalidModelName (400 invalid_model_name)
    │   └── InvalidManifest (400 invalid_manifest)   a model.yaml that does not parse
    ├── Unauthorized (401 unauthorized)
    ├── Forbidden (403 forbidden)
    ├── NotFound (404 not_found)
    │   ├── ModelNotFound (404 model_not_found)
    │   └── VersionNotFound (404 version_not_found)
    ├── Conflict (409 conflict)
    │   └── VersionExists (409 version_exists)   a push to a version already stored
    ├── PayloadTooLarge (413 payload_too_large)
    ├── ClientClosedRequest (499 client_closed_request)   the client left before its answer
    ├── TooManyRequests (429 too_many_requests; Retry-After)
    ├── DeadlineExceeded (504 deadline_exceeded)   dropped before it ran
    └── Unavailable (503 unavailable; may carry Retry-After)
        ├── ModelLoadFailed (503 model_load_failed)
        ├── InsufficientMemory (503 insufficient_memory)
        ├── RuntimeNotInstalled (503 runtime_not_installed)
        ├── QueueFull (503 queue_full)
        ├── ServerShuttingDown (503 shutting_down)
        └── StorageError (503 storage_unavailable)   the model store failed or is unreachable
            └── ArtifactMismatch (503 artifact_mismatch)   a file's bytes differ from its sha256
"""

from __future__ import annotations


class ModelhostError(Exception):
    """Base of every error modelhost raises on purpose; unexpected ones become 500 too."""

    status: int = 500
    code: str = "internal"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class BadRequest(ModelhostError):
    status = 400
    code = "bad_request"


class InvalidTensor(BadRequest):
    code = "invalid_tensor"


class InvalidModelName(BadRequest):
    code = "invalid_model_name"


class InvalidManifest(BadRequest):
    code = "invalid_manifest"


class Unauthorized(ModelhostError):
    status = 401
    code = "unauthorized"


class Forbidden(ModelhostError):
    status = 403
    code = "forbidden"


class Conflict(ModelhostError):
    status = 409
    code = "conflict"


class VersionExists(Conflict):
    code = "version_exists"


class NotFound(ModelhostError):
    status = 404
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class VersionNotFound(NotFound):
    code = "version_not_found"


class PayloadTooLarge(ModelhostError):
    status = 413
    code = "payload_too_large"


class ClientClosedRequest(ModelhostError):
    """The client closed the connection before the request was answered (nginx's 499): not a
    server error, and nobody is left to read the answer."""

    status = 499
    code = "client_closed_request"


class TooManyRequests(ModelhostError):
    status = 429
    code = "too_many_requests"


class DeadlineExceeded(ModelhostError):
    status = 504
    code = "deadline_exceeded"


class Unavailable(ModelhostError):
    status = 503
    code = "unavailable"


class ModelLoadFailed(Unavailable):
    code = "model_load_failed"


class InsufficientMemory(Unavailable):
    code = "insufficient_memory"


class RuntimeNotInstalled(Unavailable):
    code = "runtime_not_installed"


class QueueFull(Unavailable):
    code = "queue_full"


class ServerShuttingDown(Unavailable):
    code = "shutting_down"


class StorageError(Unavailable):
    code = "storage_unavailable"


class ArtifactMismatch(StorageError):
    code = "artifact_mismatch"
