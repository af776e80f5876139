"""An ordered process pool in which a crashing task costs exactly that task.

Decoders are native code fed with hostile files: one can segfault, abort or be killed by the OOM
killer. A DataLoader loses every batch in flight when a worker dies, and which file killed it is
then found only by scoring the suspects again. Here each worker runs one task at a time and answers
through its own pipe, so the main process always knows which task a worker held. When a worker
dies, for whatever reason and at whatever moment (while decoding, or half-way through sending its
answer), that one task is reported as ``Crashed``, the tasks queued behind it go to the other
workers, and a fresh worker takes its place.

Workers receive the items one by one through their pipe, never a list of all of them, so a
scan of ten million paths keeps a single copy of its paths, in the main process.

A pool is started for each ``map`` and stopped at its end, unless it was ``start``-ed: then its
workers serve call after call of ``map`` (one at a time) until ``close``, so that a service pays
for forking them once rather than for every batch.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

PARENT_CHECK_S = 1.0
"""How often an idle worker checks that the process that started it is still alive."""

SHUTDOWN_S = 5.0
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Crashed:
    """The worker running this task died before it answered; ``detail`` says how, ``task`` is the task."""

    detail: str
    task: Any = field(default=None, compare=False)


class WorkerError(RuntimeError):
    """A task raised instead of returning: a bug in the task function, with the worker's traceback."""


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exited with status {exitcode}" if exitcode is not None else "stopped answering"


def _die_with_parent() -> None:
    """On Linux, have the kernel kill this worker when its parent dies, even mid-task."""
    prctl = getattr(ctypes.CDLL(None), "prctl", None) if sys.platform.startswith("linux") else None
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _serve(fn: Callable[[Any], Any], conn: Connection, parent: int, foreign: list[int], setup: Callable[[], None] | None) -> None:
    """Worker loop: answer each task on ``conn`` until told to stop or the parent is gone.

    ``foreign`` are the parent's ends of every pipe, which the fork copied into this worker: they
    are closed first, so that when the parent closes a pipe, its worker sees the end of it.
    ``setup`` runs once, before the first task.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent()
    for fd in foreign:
        with suppress(OSError):
            os.close(fd)
    if os.getppid() != parent:
        return
    if setup is not None:
        setup()
    while True:
        if not conn.poll(PARENT_CHECK_S):
            if os.getppid() != parent:
                return
            continue
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        index, item = message
        try:
            answer = (index, True, fn(item))
        except Exception:
            answer = (index, False, traceback.format_exc())
        try:
            conn.send(answer)
        except OSError:
            return


class _Worker:
    def __init__(self, context: Any, fn: Callable[[Any], Any], siblings: list[_Worker], setup: Callable[[], None] | None) -> None:
        self.conn, child = context.Pipe(duplex=True)
        foreign = [w.conn.fileno() for w in siblings] + [self.conn.fileno()]
        self.process = context.Process(target=_serve, args=(fn, child, os.getpid(), foreign, setup), daemon=True)
        self.process.start()
        child.close()
        self.pending: deque[int] = deque()
        self.dead = False

    def stop(self) -> None:
        """Ask the worker to stop, and close our end so that a worker blocked on a send fails at once."""
        if not self.dead:
            with suppress(OSError):
                self.conn.send(None)
        self.conn.close()
        self.process.join(SHUTDOWN_S)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


class OrderedPool(Generic[T, R]):
    """Run ``fn`` on items in worker processes and yield the answers in input order.

    Args:
        fn: the task; it runs in a forked worker and must return a picklable value. Expected
            failures belong in the value it returns; an exception it raises is a bug and ends the
            iteration with a ``WorkerError``.
        workers: worker processes; 0 runs ``fn`` in this process, where a crash ends the process.
        window: tasks handed out but not yet yielded, at most (bounds the memory of answers
            waiting for a slower task ahead of them).
        depth: tasks queued on one worker at a time, so that it never waits for the next one.
        setup: run once in each worker process before its first task (not with ``workers=0``).
    """

    def __init__(
        self, fn: Callable[[T], R], *, workers: int, window: int, depth: int = 2, setup: Callable[[], None] | None = None
    ) -> None:
        if workers < 0 or window < 1 or depth < 1:
            raise ValueError(f"workers must be >= 0 and window, depth >= 1, got {workers}, {window}, {depth}")
        self.fn = fn
        self.workers = workers
        self.window = window
        self.depth = depth
        self.setup = setup
        self._kept: list[_Worker] | None = None

    def start(self) -> OrderedPool[T, R]:
        """Fork the workers now and keep them across calls of ``map`` until ``close``."""
        if self.workers and self._kept is None:
            context = multiprocessing.get_context("fork")
            kept: list[_Worker] = []
            for _ in range(self.workers):
                kept.append(_Worker(context, self.fn, kept, self.setup))
            self._kept = kept
        return self

    def close(self) -> None:
        """Stop the workers ``start`` kept (idempotent)."""
        kept, self._kept = self._kept, None
        for worker in kept or ():
            worker.stop()

    def map(self, items: Iterable[T]) -> Iterator[R | Crashed]:
        """Answers for ``items``, in order; a task whose worker died yields ``Crashed``."""
        if self.workers == 0:
            return (self.fn(item) for item in items)
        return self._map(iter(items))

    def _map(self, items: Iterator[T]) -> Iterator[R | Crashed]:
        context = multiprocessing.get_context("fork")
        held: dict[int, T] = {}
        answers: dict[int, R | Crashed] = {}
        retry: deque[int] = deque()
        taken = 0
        exhausted = False
        emitted = 0
        kept = self._kept is not None
        pool: list[_Worker] = self._kept if self._kept is not None else []
        while len(pool) < self.workers:
            pool.append(_Worker(context, self.fn, pool, self.setup))

        def next_task() -> int | None:
            nonlocal taken, exhausted
            if retry:
                return retry.popleft()
            if exhausted or taken - emitted >= self.window:
                return None
            try:
                held[taken] = next(items)
            except StopIteration:
                exhausted = True
                return None
            taken += 1
            return taken - 1

        def bury(worker: _Worker) -> None:
            """Report the task the dead worker held, requeue the ones behind it, start a replacement."""
            worker.dead = True
            worker.process.join(SHUTDOWN_S)
            if worker.pending:
                crashed = worker.pending.popleft()
                answers[crashed] = Crashed(_describe_exit(worker.process.exitcode), held.pop(crashed))
                ordered = sorted([*retry, *worker.pending])
                retry.clear()
                retry.extend(ordered)
                worker.pending.clear()
            worker.stop()
            position = pool.index(worker)
            pool[position] = _Worker(context, self.fn, pool[:position] + pool[position + 1 :], self.setup)

        def receive(worker: _Worker) -> bool:
            """Take every answer waiting on the worker's pipe; False when the pipe broke."""
            try:
                while worker.conn.poll():
                    index, ok, value = worker.conn.recv()
                    if not ok:
                        raise WorkerError(f"a worker task failed:\n{value}")
                    worker.pending.remove(index)
                    answers[index] = value
                    held.pop(index, None)
            except (EOFError, OSError):
                return False
            return True

        try:
            while True:
                while emitted in answers:
                    yield answers.pop(emitted)
                    emitted += 1
                if exhausted and not retry and emitted == taken:
                    return
                for worker in list(pool):
                    while len(worker.pending) < self.depth:
                        index = next_task()
                        if index is None:
                            break
                        worker.pending.append(index)
                        try:
                            worker.conn.send((index, held[index]))
                        except OSError:
                            bury(worker)
                            break
                busy = [w for w in pool if w.pending]
                if not busy:
                    continue
                ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy])
                for worker in busy:
                    if worker.conn in ready or worker.process.sentinel in ready:
                        if not receive(worker) or not worker.process.is_alive():
                            bury(worker)
        finally:
            for position, worker in enumerate(pool):
                if not kept or worker.pending:
                    # A kept worker left holding tasks of an abandoned map would answer them in the next one.
                    worker.stop()
                    if kept:
                        pool[position] = _Worker(context, self.fn, pool[:position] + pool[position + 1 :], self.setup)
