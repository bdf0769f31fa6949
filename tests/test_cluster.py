"""amos_hw.backend.cluster: tasks on a local Dask cluster, retries, failures and worker deaths."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from amos_hw.backend.cluster import ClusterError, Task, cluster, run_tasks

pytest.importorskip("distributed", reason="the cluster extra (dask[distributed]) is not installed")


def square(v: int) -> int:
    return v * v


def fail_once(marker: str, v: int) -> int:
    """Raises the first time (a marker file remembers it across worker processes)."""
    m = Path(marker)
    if not m.exists():
        m.write_text("failed once\n")
        raise RuntimeError("a passing failure")
    return v


def always_fail(v: int) -> int:
    raise ValueError(f"task {v} is broken")


def die(v: int) -> int:
    os._exit(3)  # the worker process goes, as a simulator crash would take it


@pytest.fixture(scope="module")
def client():
    with cluster(workers=2, allowed_failures=0) as c:
        yield c


def test_results_in_submission_order_with_a_retry(client, tmp_path):
    seen = []
    tasks = [Task(f"sq{v}", square, (v,)) for v in range(6)]
    tasks.append(Task("flaky", fail_once, (str(tmp_path / "m"), 42)))
    out = run_tasks(client, tasks, retries=1, progress=False,
                    on_result=lambda i, r: seen.append(i))
    assert out == [0, 1, 4, 9, 16, 25, 42]
    assert sorted(seen) == list(range(7))


def test_a_failing_task_is_named_and_the_rest_kept(client):
    tasks = [Task("good", square, (3,)), Task("bad", always_fail, (7,))]
    with pytest.raises(ClusterError, match=r"1 of 2 tasks did not complete.*bad: ValueError: "
                                           r"task 7 is broken") as e:
        run_tasks(client, tasks, retries=1, progress=False)
    assert e.value.results == [9, None]
    assert e.value.missing == ["bad"]


def test_a_dying_worker_is_a_clear_error(client):
    with pytest.raises(ClusterError, match="dead: its worker process died") as e:
        run_tasks(client, [Task("dead", die, (0,)), Task("alive", square, (2,))], retries=0,
                  progress=False)
    assert e.value.results == [None, 4] and e.value.missing == ["dead"]


def test_task_names_must_be_unique(client):
    with pytest.raises(ValueError, match="two tasks are named 'a'"):
        run_tasks(client, [Task("a", square, (1,)), Task("a", square, (2,))])


def test_an_unreachable_scheduler_is_named():
    with pytest.raises(ClusterError, match=r"cannot reach the Dask scheduler at "
                                           r"'tcp://127.0.0.1:9' within 1 s"), \
            cluster("tcp://127.0.0.1:9", timeout=1):
        pass


def test_bad_worker_count():
    with pytest.raises(ValueError, match="workers must be a positive integer, not 0"), \
            cluster(workers=0):
        pass
