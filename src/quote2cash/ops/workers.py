"""Hub worker processes: take over the flows of a worker that is gone for good."""

from __future__ import annotations

import time
from dataclasses import dataclass

from dbos import DBOS

from quote2cash.errors import UsageError
from quote2cash.runtime.hub import Hub

UNFINISHED = ("ENQUEUED", "PENDING")


@dataclass(frozen=True)
class Recovered:
    """A workflow taken over from another worker, and its status when the wait ended."""

    workflow_id: str
    status: str


def recover(hub: Hub, executor_id: str, timeout: float = 600) -> list[Recovered]:
    """Move the unfinished flows of executor ``executor_id`` to this (launched) hub and wait for them.

    A worker recovers its own unfinished flows when it restarts; this is for one
    that will not come back. Waits at most ``timeout`` seconds in all.
    """
    if executor_id == hub.config.executor_id:
        raise UsageError(
            f"{executor_id} is this worker's own executor id; restarting it recovers its flows already"
        )
    # DBOS's own recovery routine, the one its admin endpoint and Conductor call.
    # The public DBOS.list_workflows(status="PENDING", executor_id=...) followed
    # by DBOS.resume_workflow(...) would also move them, but resume re-enqueues
    # unconditionally: a second `q2c workers recover`, or one racing a worker
    # that did come back, would re-enqueue a flow a live worker is running, and
    # run it twice at once. Recovery only re-enqueues a workflow still PENDING
    # on the named executor, so repeating it is harmless; it also keeps the
    # workflow's deadline and deduplication id, which resume clears.
    handles = DBOS._recover_pending_workflows([executor_id])
    deadline = time.monotonic() + timeout
    out: list[Recovered] = []
    for handle in handles:
        status = handle.get_status().status
        while status in UNFINISHED and time.monotonic() < deadline:
            time.sleep(0.2)
            status = handle.get_status().status
        out.append(Recovered(str(handle.get_workflow_id()), str(status)))
    return out
