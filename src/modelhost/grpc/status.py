"""modelhost's errors as gRPC status codes, with the same messages REST sends.

The code comes from the error's HTTP status (``errors.py`` gives every error one), so REST and
gRPC always agree on what went wrong; ``error-code`` (the REST body's ``code``) and
``retry-after`` (seconds, when the error has one) ride in the trailing metadata.
"""

from __future__ import annotations

import math

import grpc

from modelhost.errors import ModelhostError, VersionExists

# HTTP status -> gRPC status code: the pairs the gRPC project itself documents.
_BY_HTTP_STATUS = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,  # gRPC's own answer to an oversized message
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    499: grpc.StatusCode.CANCELLED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}

# The HTTP-style status of a call its client cancelled (nginx's convention): what the metrics'
# status label says of it.
CLIENT_CLOSED = 499


def status_code(error: ModelhostError) -> grpc.StatusCode:
    """The gRPC status code of ``error``."""
    if isinstance(error, VersionExists):
        return grpc.StatusCode.ALREADY_EXISTS
    return _BY_HTTP_STATUS.get(error.status, grpc.StatusCode.INTERNAL)


def trailing_metadata(error: ModelhostError) -> tuple[tuple[str, str], ...]:
    """``error-code`` always; ``retry-after`` in whole seconds when the error says when."""
    pairs = [("error-code", error.code)]
    if error.retry_after:
        pairs.append(("retry-after", str(max(1, math.ceil(error.retry_after)))))
    return tuple(pairs)
