"""The end of a run: Snakemake's pending scheduler timers are cancelled, nothing else."""

from __future__ import annotations

import inspect
import threading

from nqp_resilience import run_end


class JobScheduler:  # the name and method of Snakemake's scheduler
    def _schedule_reevalutation(self, delay):
        timer = threading.Timer(delay, lambda: None)
        timer.start()
        return timer


def test_only_the_scheduler_timers_are_cancelled():
    ours = JobScheduler()._schedule_reevalutation(60)
    other = threading.Timer(60, lambda: None)
    other.start()
    try:
        assert run_end.cancel_scheduler_timers() == 1
        ours.join(10)
        assert not ours.is_alive()
        assert other.is_alive() and not other.finished.is_set()
        assert run_end.cancel_scheduler_timers() == 0
    finally:
        other.cancel()
        other.join(10)


def test_snakemake_still_starts_its_timers_where_we_look_for_them():
    """The installed Snakemake's scheduler: the method whose timers are cancelled still starts
    a threading.Timer (a rename upstream would make the cancelling a silent no-op)."""
    from snakemake.scheduling.job_scheduler import JobScheduler

    method = JobScheduler._schedule_reevalutation
    assert method.__qualname__ + "." == run_end._SCHEDULER_TIMER
    assert "threading.Timer(" in inspect.getsource(method)
