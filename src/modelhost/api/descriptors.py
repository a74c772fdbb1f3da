"""How many connections this process may hold: below its own file descriptor limit.

Every connection is a descriptor. When a process runs out, accept() fails and the event loop's
library closes each new connection at once (libuv's EMFILE trick): every client, health probes
included, gets an empty reply. So the connection cap is sized from the limit the process
actually has, leaving room for what else it opens (database and S3 connections, model files,
the artifact cache's parallel downloads, log and journal files, worker threads' pipes).
"""

from __future__ import annotations

import logging
import resource

log = logging.getLogger(__name__)

# Descriptors kept for everything but client connections: at least this many...
MIN_RESERVE = 256
# ... or this share of the limit, whichever is more.
RESERVE_SHARE = 1 / 16


def raise_descriptor_limit() -> int:
    """Raise the soft descriptor limit to the hard one where allowed; the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = _kernel_ceiling()
    if soft == resource.RLIM_INFINITY or soft >= hard:
        return hard if soft == resource.RLIM_INFINITY else soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:
        log.warning("could not raise the descriptor limit from %d to %d: %s", soft, hard, exc)
        return soft
    return hard


def connection_cap(descriptor_limit: int, wanted: int) -> int:
    """The most connections to hold: ``wanted``, or fewer if the descriptor limit is lower than
    ``wanted`` plus what the process needs besides connections."""
    reserve = max(min(MIN_RESERVE, descriptor_limit // 2), int(descriptor_limit * RESERVE_SHARE))
    return max(1, min(wanted, descriptor_limit - reserve))


def _kernel_ceiling() -> int:
    try:
        with open("/proc/sys/fs/nr_open") as ceiling:
            return int(ceiling.read())
    except (OSError, ValueError):
        return 1 << 20
