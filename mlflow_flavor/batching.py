"""Adaptive batching: concurrent ``predict`` calls are merged into one model run while the model is busy.

MLflow's scoring server hands each request to ``predict`` on its own thread. Without merging, eight
concurrent one-text requests become eight Flair ``predict`` calls of one text each, run one after the
other. Here every call joins a queue; a call that finds the model idle runs at once (no added latency at
low load), and while a run is going on, the calls that arrive wait. When the run ends, the oldest waiting
call becomes the next *leader*: it takes every waiting call whose batching key equals its own (up to
``max_batch_texts`` texts), runs them as one, hands each caller exactly its own results and passes the
lead on. No thread of our own is started: the callers' threads do the work, one at a time.

Under steady concurrent load this alone splits the clients into two groups that take turns: the callers
of one run get their answers and send their next requests just *after* the next run has started with
the requests that came in meanwhile (eight clients became runs of five and three). So a leader also
waits, briefly, for the requests it can expect: as many as the last run held plus those that were waiting
when it ended (the recent concurrency), for at most a quarter of the last run's time and never when the
model has been idle for longer than a run. At low load the expectation is one request: no wait.

If a merged run fails, its requests are run again one by one, so that only the culprit's caller gets the
error. ``max_wait_ms`` makes every leader wait that long for more requests (0, the default: only the
adaptive wait above).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = ["AdaptiveBatcher", "BatchStats"]

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")

#: ``run(key, items) -> results``: one result per item, in order.
RunFn = Callable[[Hashable, Sequence[Any]], Sequence[Any]]


@dataclass(eq=False)  # removed from the queue by identity
class _Request:
    key: Hashable
    items: Sequence[Any]
    leader: bool = False
    done: bool = False
    results: Sequence[Any] | None = None
    error: BaseException | None = None


#: A leader waits for expected requests at most this share of the last run's duration ...
WAIT_SHARE_OF_RUN = 0.25
#: ... and never longer than this.
MAX_ADAPTIVE_WAIT_S = 0.05


@dataclass
class BatchStats:
    """Counters of the batcher's work since it was created (read them with :meth:`AdaptiveBatcher.stats`)."""

    requests: int = 0
    runs: int = 0
    merged_runs: int = 0  # runs that held more than one request
    max_requests_per_run: int = 0
    retried_runs: int = 0  # merged runs that failed and were split into single requests
    texts: int = 0
    waits: int = 0  # runs whose leader waited for expected requests


class AdaptiveBatcher(Generic[Item, Result]):
    """Merge concurrent calls of :meth:`submit` with the same key into single calls of ``run``.

    Args:
        run: runs a list of items (the concatenated items of the merged requests) and returns one result
            per item, in order. Only one run happens at a time.
        max_batch_texts: the most items in a merged run; a single request larger than that runs alone.
        max_wait_ms: how long every leader waits for more requests before its run (0: only the adaptive
            wait for the requests recent concurrency leads it to expect, see the module docstring).
        enabled: off, every request runs alone (still one at a time).
    """

    def __init__(
        self,
        run: RunFn,
        *,
        max_batch_texts: int = 128,
        max_wait_ms: float = 0.0,
        enabled: bool = True,
    ):
        self._run = run
        self.max_batch_texts = max_batch_texts
        self.max_wait_s = max_wait_ms / 1000.0
        self.enabled = enabled
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # a request is done, or leads
        self._arrived = threading.Condition(lock)  # a request joined the queue (for a waiting leader)
        self._pending: deque[_Request] = deque()
        self._busy = False
        self._stats = BatchStats()
        self._expected = 1  # requests the next run can expect (recent concurrency)
        self._last_run_s = 0.0
        self._last_end = 0.0

    def stats(self) -> BatchStats:
        with self._cond:
            return BatchStats(**vars(self._stats))

    def submit(self, key: Hashable, items: Sequence[Item]) -> Sequence[Result]:
        """Run ``items`` (merged with concurrent requests of the same ``key``); return their results."""
        request = _Request(key, list(items))
        with self._cond:
            self._stats.requests += 1
            self._pending.append(request)
            self._arrived.notify()
            if not self._busy:
                self._busy = True
                request.leader = True
            while not (request.done or request.leader):
                self._cond.wait()
        if not request.done:
            self._lead(request)
        if request.error is not None:
            raise request.error
        assert request.results is not None
        return request.results

    def _lead(self, request: _Request) -> None:
        batch = [request]
        started = None
        try:
            if self.enabled:
                self._wait_for_more(request)
            with self._cond:
                batch = self._take(request)
            started = time.monotonic()
            self._execute(batch)
        finally:
            with self._cond:
                if request in self._pending:  # failed before it was taken: never promote a finished request
                    self._pending.remove(request)
                if started is not None:
                    self._last_end = time.monotonic()
                    self._last_run_s = self._last_end - started
                    # the requests that can join the next run of this key: this run's callers and those waiting
                    self._expected = len(batch) + sum(r.key == request.key for r in self._pending)
                for r in batch:
                    r.done = True
                    if r.results is None and r.error is None:
                        r.error = RuntimeError("The batched run was interrupted.")
                if self._pending:
                    self._pending[0].leader = True
                else:
                    self._busy = False
                self._cond.notify_all()

    def _wait_for_more(self, request: _Request) -> None:
        """Wait ``max_wait_ms``, or while the requests recent concurrency promises have not all arrived."""
        with self._cond:
            now = time.monotonic()
            expected, wait = 1, self.max_wait_s
            recent = now - self._last_end <= max(self._last_run_s, 0.001)
            if recent and self._expected > 1:
                expected = self._expected
                wait = max(wait, min(WAIT_SHARE_OF_RUN * self._last_run_s, MAX_ADAPTIVE_WAIT_S))
            if wait <= 0:
                return
            deadline = now + wait
            self._stats.waits += 1
            while (remaining := deadline - time.monotonic()) > 0:
                same = [r for r in self._pending if r.key == request.key]
                if sum(len(r.items) for r in same) >= self.max_batch_texts:
                    return
                if not self.max_wait_s and len(same) >= expected:
                    return
                self._arrived.wait(remaining)

    def _take(self, request: _Request) -> list[_Request]:
        """Remove and return ``request`` and the waiting requests that can join it (oldest first)."""
        self._pending.remove(request)
        batch = [request]
        if not self.enabled:
            return batch
        size = len(request.items)
        for other in list(self._pending):
            if other.key != request.key:
                continue
            if size + len(other.items) > self.max_batch_texts:
                break
            self._pending.remove(other)
            batch.append(other)
            size += len(other.items)
        return batch

    def _execute(self, batch: list[_Request]) -> None:
        items = [item for r in batch for item in r.items]
        with self._cond:
            stats = self._stats
            stats.runs += 1
            stats.texts += len(items)
            stats.merged_runs += len(batch) > 1
            stats.max_requests_per_run = max(stats.max_requests_per_run, len(batch))
        if len(batch) > 1:
            log.debug("Merged run: %d requests, %d texts", len(batch), len(items))
        try:
            results = list(self._run(batch[0].key, items)) if items else []
        except Exception as e:  # noqa: BLE001 - re-raised per request below
            if len(batch) == 1:
                batch[0].error = e
                return
            log.debug("A merged run of %d requests failed (%s); running them one by one", len(batch), e)
            with self._cond:
                self._stats.retried_runs += 1
            for r in batch:
                self._execute_alone(r)
            return
        if len(results) != len(items):
            error = RuntimeError(f"The model returned {len(results)} results for {len(items)} inputs.")
            for r in batch:
                r.error = error
            return
        start = 0
        for r in batch:
            r.results = results[start : start + len(r.items)]
            start += len(r.items)

    def _execute_alone(self, request: _Request) -> None:
        try:
            request.results = list(self._run(request.key, request.items)) if request.items else []
        except Exception as e:  # noqa: BLE001 - handed to this request's caller
            request.error = e
