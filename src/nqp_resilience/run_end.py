"""The end of a run: nothing left waiting that would keep Snakemake's process from exiting.

Snakemake's scheduler starts a :class:`threading.Timer` after every scheduling round (its job
rate limiter re-evaluates the queue one timespan later, a second by default). The timers are
not daemon threads, so after the last job the process waits for the last of them before it
exits: up to a second on every run, which is a tenth of a run on the default data. Once the
scheduler has finished (Snakemake's ``onsuccess`` and ``onerror``) nothing can use them, and
:func:`cancel_scheduler_timers` cancels them.
"""

from __future__ import annotations

import threading

# the function of the scheduler's timers (snakemake.scheduling.job_scheduler)
_SCHEDULER_TIMER = "JobScheduler._schedule_reevalutation."


def cancel_scheduler_timers() -> int:
    """Cancel the pending re-evaluation timers of Snakemake's scheduler (and no other thread);
    returns how many were pending. Call it only once the scheduler has finished."""
    cancelled = 0
    for thread in threading.enumerate():
        function = getattr(thread, "function", None)
        if (
            isinstance(thread, threading.Timer)
            and getattr(function, "__qualname__", "").startswith(_SCHEDULER_TIMER)
            and not thread.finished.is_set()
        ):
            thread.cancel()
            cancelled += 1
    return cancelled
