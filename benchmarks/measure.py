"""Timing loops: every case is warmed up, then timed with ``time.perf_counter_ns``, bounded in iterations AND in
seconds, with the garbage collector paused while the clock runs (collections would land on random samples).

A :class:`Timing` keeps the per-operation durations (ns) and the wall time of the whole loop, so a row can show the
median, the 90th percentile and the throughput of the same run.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

__all__ = ["Sizes", "Timing", "gc_paused", "time_concurrent", "time_each", "time_interleaved", "time_once"]


@dataclass(frozen=True)
class Sizes:
    """How much work each case does at one ``--size``.

    :param name: smoke, quick or full.
    :param iterations: most timed iterations of a latency case.
    :param warmup: untimed iterations first.
    :param time_cap: most seconds one case's timed loop runs (the loop stops at whichever bound comes first).
    :param history: messages per session for the history read case (flat latency is the point).
    :param thread: checkpoints in the thread the checkpointer cases read and list.
    :param concurrency: concurrent writers / threads.
    :param memory_sessions: sessions for the bytes-per-session figure.
    :param memory_messages: messages for the bytes-per-message figure.
    :param rows: rows (messages) per archiver / bulk-insert run.
    :param graph_invokes: most graph invocations per saver.
    """

    name: str
    iterations: int
    warmup: int
    time_cap: float
    history: tuple[int, ...]
    thread: int
    concurrency: int
    memory_sessions: int
    memory_messages: int
    rows: int
    graph_invokes: int


SIZES: dict[str, Sizes] = {
    "smoke": Sizes("smoke", 12, 1, 0.2, (10, 100), 12, 4, 300, 300, 200, 3),
    "quick": Sizes("quick", 300, 20, 3.0, (10, 1_000, 10_000), 200, 32, 10_000, 10_000, 10_000, 100),
    "full": Sizes("full", 1_000, 50, 8.0, (10, 1_000, 100_000), 1_000, 32, 100_000, 100_000, 100_000, 300),
}


@dataclass
class Timing:
    """Durations of the operations of one case (ns per operation), and the wall time they took together.

    :param samples_ns: one duration per sample; a sample may cover several operations (``ops_per_sample``), in
        which case the duration stored is the per-operation share.
    :param ops: operations done in the timed part.
    :param wall_ns: wall time of the timed part.
    """

    samples_ns: list[float] = field(default_factory=list)
    ops: int = 0
    wall_ns: int = 0

    def extend(self, other: Timing) -> Timing:
        """Add ``other``'s samples, operations and wall time to this timing (rounds of one case)."""
        self.samples_ns.extend(other.samples_ns)
        self.ops += other.ops
        self.wall_ns += other.wall_ns
        return self

    @property
    def median_ns(self) -> float:
        """Median time per operation."""
        return float(statistics.median(self.samples_ns)) if self.samples_ns else float("nan")

    @property
    def p90_ns(self) -> float:
        """90th percentile time per operation (the largest sample when there are fewer than 10)."""
        if not self.samples_ns:
            return float("nan")
        ordered = sorted(self.samples_ns)
        return float(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))])

    @property
    def ops_per_s(self) -> float:
        """Operations per second over the wall time of the timed part."""
        return self.ops * 1e9 / self.wall_ns if self.wall_ns else float("nan")


@contextmanager
def gc_paused() -> Iterator[None]:
    """Collect once, then keep the cyclic GC off while the clock runs."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


async def time_each(
    op: Callable[[int], Awaitable[object]],
    sizes: Sizes,
    *,
    iterations: int | None = None,
    warmup: int | None = None,
    ops_per_call: int = 1,
) -> Timing:
    """Await ``op(i)`` ``warmup`` times untimed, then up to ``iterations`` times (or ``sizes.time_cap`` seconds),
    timing each call. ``ops_per_call`` > 1 when one call does several operations (a pipeline of 100 GETs)."""
    count = sizes.iterations if iterations is None else iterations
    for i in range(sizes.warmup if warmup is None else warmup):
        await op(-1 - i)
    timing = Timing()
    clock = time.perf_counter_ns
    deadline = clock() + int(sizes.time_cap * 1e9)
    with gc_paused():
        start = clock()
        for i in range(count):
            t0 = clock()
            await op(i)
            t1 = clock()
            timing.samples_ns.append((t1 - t0) / ops_per_call)
            if t1 > deadline:
                break
        timing.wall_ns = clock() - start
    timing.ops = len(timing.samples_ns) * ops_per_call
    return timing


async def time_concurrent(
    op: Callable[[int, int], Awaitable[object]],
    sizes: Sizes,
    *,
    workers: int | None = None,
    per_worker: int | None = None,
) -> Timing:
    """``workers`` tasks each awaiting ``op(worker, i)`` up to ``per_worker`` times (bounded by the time cap too);
    samples are the per-call latencies seen under that concurrency, ``ops_per_s`` the aggregate throughput."""
    n_workers = sizes.concurrency if workers is None else workers
    count = per_worker if per_worker is not None else max(2, sizes.iterations // 4)
    await asyncio.gather(*(op(w, -1) for w in range(n_workers)))  # warm-up: connections, first keys
    timing = Timing()
    clock = time.perf_counter_ns
    deadline = clock() + int(sizes.time_cap * 1e9)

    async def worker(w: int) -> None:
        for i in range(count):
            t0 = clock()
            await op(w, i)
            t1 = clock()
            timing.samples_ns.append(t1 - t0)
            if t1 > deadline:
                return

    with gc_paused():
        start = clock()
        await asyncio.gather(*(worker(w) for w in range(n_workers)))
        timing.wall_ns = clock() - start
    timing.ops = len(timing.samples_ns)
    return timing


async def time_once(op: Callable[[], Awaitable[int]], *, repeats: int = 1, pause_gc: bool = True) -> Timing:
    """Time ``op()`` ``repeats`` times; ``op`` returns how many operations (rows) it did. For bulk cases
    (COPY of N rows, archiver drain) where a sample is a whole batch: samples are per-row shares."""
    timing = Timing()
    clock = time.perf_counter_ns
    for _ in range(repeats):
        if pause_gc:
            with gc_paused():
                t0 = clock()
                done = await op()
                elapsed = clock() - t0
        else:
            t0 = clock()
            done = await op()
            elapsed = clock() - t0
        timing.samples_ns.append(elapsed / max(done, 1))
        timing.ops += done
        timing.wall_ns += elapsed
    return timing


async def time_interleaved(
    ops: Mapping[str, Callable[[int], Awaitable[object]]],
    sizes: Sizes,
    *,
    iterations: int | None = None,
    rounds: int = 5,
    time_cap: float | None = None,
    after_chunk: Mapping[str, Callable[[], Awaitable[object]]] | None = None,
) -> dict[str, Timing | BaseException]:
    """Time several subjects doing the same case in alternating chunks (A B C A B C ...), so that the load of a
    shared machine drifting during the run lands on every subject alike instead of on whoever ran last.

    Each subject gets ``sizes.warmup`` untimed calls, then ``iterations`` timed calls split over ``rounds`` chunks
    (each chunk also bounded by its share of the time cap); ``op(i)`` gets a running index. ``after_chunk[name]``
    runs untimed after each of that subject's chunks (for example, draining an archiver). A subject whose call
    raises is dropped from later rounds and its exception returned in place of its timing.
    """
    count = sizes.iterations if iterations is None else iterations
    cap = sizes.time_cap if time_cap is None else time_cap
    per_round = max(1, -(-count // rounds))
    results: dict[str, Timing | BaseException] = {name: Timing() for name in ops}
    index = dict.fromkeys(ops, 0)
    for name, op in ops.items():
        try:
            for i in range(sizes.warmup):
                await op(-1 - i)
        except Exception as exc:
            results[name] = exc
    clock = time.perf_counter_ns
    for _ in range(rounds):
        for name, op in ops.items():
            timing = results[name]
            if not isinstance(timing, Timing) or len(timing.samples_ns) >= count:
                continue
            deadline = clock() + int(cap * 1e9 / rounds)
            try:
                with gc_paused():
                    start = clock()
                    for _ in range(min(per_round, count - len(timing.samples_ns))):
                        t0 = clock()
                        await op(index[name])
                        t1 = clock()
                        index[name] += 1
                        timing.samples_ns.append(t1 - t0)
                        if t1 > deadline:
                            break
                    timing.wall_ns += clock() - start
                if after_chunk and name in after_chunk:
                    await after_chunk[name]()
            except Exception as exc:
                results[name] = exc
    for timing in results.values():
        if isinstance(timing, Timing):
            timing.ops = len(timing.samples_ns)
    return results
