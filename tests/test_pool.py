"""The ordered pool: answers in input order, and a dead worker costs exactly the task it held."""

from __future__ import annotations

import multiprocessing
import os
import signal
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

from aigdetect.engine.pool import Crashed, OrderedPool, WorkerError


def _square_or_die(x: int) -> int:
    if x % 7 == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    if x % 5 == 0:
        time.sleep(0.01)
    return x * x


def _expected(count: int) -> list[object]:
    return [Crashed("killed by SIGKILL") if x % 7 == 3 else x * x for x in range(count)]


@pytest.mark.parametrize("workers, window, depth", [(1, 1, 1), (2, 4, 2), (3, 16, 3)])
def test_answers_come_in_order_and_each_death_costs_one_task(workers, window, depth):
    pool = OrderedPool(_square_or_die, workers=workers, window=window, depth=depth)
    assert list(pool.map(range(40))) == _expected(40)
    assert not multiprocessing.active_children()


def _die_while_answering(x: int) -> int:
    """Write the start of an answer that promises far more bytes, then die: a half-sent answer."""
    if x == 2:
        conn = sys._getframe(1).f_locals["conn"]
        os.write(conn.fileno(), struct.pack("!i", 1 << 20) + b"partial")
        os.kill(os.getpid(), signal.SIGKILL)
    return x


def test_a_worker_dying_half_way_through_its_answer_costs_that_task_only():
    answers = list(OrderedPool(_die_while_answering, workers=2, window=8).map(range(6)))
    assert answers == [0, 1, Crashed("killed by SIGKILL"), 3, 4, 5]


def _large(x: int) -> np.ndarray:
    return np.full((3, 224, 224), x % 256, dtype=np.uint8)


def test_large_answers_arrive_intact():
    for x, array in enumerate(OrderedPool(_large, workers=2, window=6).map(range(20))):
        assert array.shape == (3, 224, 224) and (array == x % 256).all()


def _exits(x: int) -> int:
    if x == 1:
        os._exit(3)
    return x


def test_an_exit_status_is_named():
    assert list(OrderedPool(_exits, workers=1, window=2).map(range(3))) == [0, Crashed("exited with status 3"), 2]


def _raises(x: int) -> int:
    raise ValueError(f"bug on {x}")


def test_an_exception_in_a_task_is_a_bug_and_surfaces_with_its_traceback():
    with pytest.raises(WorkerError, match="ValueError: bug on 0"):
        list(OrderedPool(_raises, workers=1, window=2).map(range(3)))
    assert not multiprocessing.active_children()


def test_no_workers_runs_in_this_process():
    pids = list(OrderedPool(lambda _: os.getpid(), workers=0, window=1).map(range(3)))
    assert pids == [os.getpid()] * 3


def test_closing_early_stops_every_worker():
    answers = OrderedPool(_large, workers=2, window=8).map(range(1000))
    assert (next(answers) == 0).all()
    answers.close()
    assert not multiprocessing.active_children()


def test_the_window_bounds_how_far_tasks_are_handed_out():
    taken: list[int] = []

    def items():
        for x in range(100):
            taken.append(x)
            yield x

    answers = OrderedPool(abs, workers=2, window=5, depth=4).map(items())
    assert next(answers) == 0
    assert len(taken) == 5
    answers.close()


_ORPHAN_DRIVER = """
import os, sys, time
from aigdetect.engine.pool import OrderedPool

def slow(x):
    os.write(1, f"{os.getpid()}\\n".encode())
    time.sleep(600)

answers = OrderedPool(slow, workers=2, window=2, depth=1).map(range(2))
next(answers)
"""


def test_workers_of_a_killed_parent_exit_on_their_own():
    driver = subprocess.Popen([sys.executable, "-c", _ORPHAN_DRIVER], stdout=subprocess.PIPE, text=True)
    pids = [int(driver.stdout.readline()) for _ in range(2)]
    driver.kill()
    driver.wait()
    deadline = time.monotonic() + 60
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [pid for pid in alive if _running(pid)]
    assert not alive


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


_SET_UP: list[int] = []


def _set_up() -> None:
    _SET_UP.append(os.getpid())


def _set_up_count_or_die(x: int) -> tuple[int, int]:
    """How often setup ran in this worker; task 2 kills its worker, so a replacement answers after it."""
    if x == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return _SET_UP.count(os.getpid()), os.getpid()


def test_setup_runs_once_in_every_worker_and_in_each_replacement():
    answers = list(OrderedPool(_set_up_count_or_die, workers=1, window=1, depth=1, setup=_set_up).map(range(5)))
    assert answers[2] == Crashed("killed by SIGKILL")
    counts, pids = zip(*[a for a in answers if not isinstance(a, Crashed)])
    assert counts == (1, 1, 1, 1) and len(set(pids)) == 2 and os.getpid() not in pids
    assert _SET_UP == [], "setup never runs in the parent"


HELD = 1000
"""A task that holds its worker far longer than any test waits: a map abandoned on it leaves it held."""


def _pid(x: int) -> int:
    if x < 0:
        os.kill(os.getpid(), signal.SIGKILL)
    if x == HELD:
        time.sleep(600)
    return os.getpid()


def test_a_started_pool_keeps_its_workers_across_maps_and_replaces_only_a_dead_one():
    pool = OrderedPool(_pid, workers=2, window=8, depth=1).start()
    try:
        first = set(pool.map(range(8)))
        assert len(first) == 2 and os.getpid() not in first
        assert set(pool.map(range(8))) == first
        answers = list(pool.map([1, -1, 2, 3]))
        assert isinstance(answers[1], Crashed) and answers[1].detail == "killed by SIGKILL"
        after = set(pool.map(range(8)))
        assert len(after) == 2 and len(after & first) == 1
        abandoned = pool.map([0, HELD, HELD])
        next(abandoned)
        abandoned.close()  # a worker still holding a task of it is replaced: its answer must not reach the next map
        again = list(pool.map(range(8)))
        assert len(set(again)) == 2 and set(again) != after
    finally:
        pool.close()
    assert pool._kept is None
