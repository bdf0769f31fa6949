"""Long runs as independent tasks on Dask distributed: this machine's cores, or a running cluster.

The bitstream sweeps (``python -m boards.bench --sweep``) and the many-image RTL runs
(``python -m rtl_tests.network``) both split their work into :class:`Task` objects and hand
them to :func:`run_tasks` inside :func:`cluster`::

    with cluster(scheduler=None) as client:        # a LocalCluster of os.cpu_count() processes
        results = run_tasks(client, [Task("a", f, (1,)), Task("b", f, (2,))])

* :func:`cluster` starts a ``LocalCluster`` of the machine's cores (processes, one thread
  each, no dashboard, no per-worker memory cap) or connects to a running scheduler (``scheduler="tcp://host:8786"``,
  started with ``dask scheduler`` and ``dask worker ADDRESS --nthreads 1`` on each machine).
  A scheduler that does not answer, or has no worker, within ``timeout`` seconds is a
  :class:`ClusterError` naming its address.
* :func:`run_tasks` submits every task at once, shows a ``tqdm`` bar as they complete, and
  returns their results in submission order. A task that raises is retried ``retries`` times
  (Dask's task retries); a task whose worker process dies is rescheduled up to
  ``allowed_failures`` times (Dask's ``distributed.scheduler.allowed-failures``, set for a local
  cluster; a running cluster keeps its own setting), then fails with ``KilledWorker``.
* A run with a failed task raises :class:`ClusterError` once every other task has finished: its
  message names each failed task and its error, and the error carries what did finish
  (``results``, ``None`` where missing) so that a caller can record it as incomplete. Nothing is
  returned for a run that did not complete.

Tasks run in other processes (other machines with a running cluster): their function must be
importable there (a module-level function), and their arguments and results picklable. Worker
processes on another machine see their own file system: a task should return its result rather
than write it where the caller will read it.

Needs the ``cluster`` extra (``pip install -e '.[cluster]'``: ``dask[distributed]``); importing
this module does not, using it does.
"""
from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import CancelledError
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from amos_hw.lib.checks import positive_int

try:  # the `cluster` extra: only long runs need it, not generation nor most tests
    import dask
    from distributed import Client, LocalCluster, as_completed
    from distributed.scheduler import KilledWorker
except ImportError:  # cluster() says how to install it
    dask = None

__all__ = ["ClusterError", "Task", "add_cluster_arguments", "cluster", "run_tasks"]

#: How long a running scheduler has to answer, and to show a worker (seconds).
TIMEOUT_S = 30.0
#: Retries of a task that raised (after the first try).
RETRIES = 2
#: How many times a task may take its worker process down with it before it fails.
ALLOWED_FAILURES = 2
#: Failed tasks named in full in a :class:`ClusterError`'s message.
_SHOWN = 5


@dataclass(frozen=True)
class Task:
    """One unit of work: ``fn(*args, **kwargs)`` on a worker, known to the user by ``name``.

    Parameters
    ----------
    name : str
        What the task is called in the progress bar and in errors (unique within a run).
    fn : callable
        A module-level function (it is pickled by reference and imported on the worker).
    args : tuple
        Positional arguments (picklable).
    kwargs : mapping
        Keyword arguments (picklable).
    """

    name: str
    fn: Callable[..., Any]
    args: tuple = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)


class ClusterError(RuntimeError):
    """A cluster that cannot be reached, or a run that did not complete.

    Attributes
    ----------
    results : list
        Each task's result in submission order, ``None`` for a task that did not finish (empty
        when no run took place).
    failures : dict
        Task name -> its error, in words.
    missing : list of str
        The names of the tasks without a result, in submission order.
    """

    def __init__(self, message: str, *, results: list | None = None,
                 failures: Mapping[str, str] | None = None,
                 missing: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.results = list(results or [])
        self.failures = dict(failures or {})
        self.missing = list(missing)


def add_cluster_arguments(group, what: str) -> None:
    """The options every command that runs tasks on a cluster takes (``--scheduler``,
    ``--workers``, ``--retries``), added to an argparse ``group``; ``what`` names one task in
    the help ("build", "chunk")."""
    group.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="a running Dask scheduler (tcp://host:8786); default: a local "
                            "cluster of this machine's cores")
    group.add_argument("--workers", type=int, default=None,
                       help="local cluster: worker processes (default: the machine's cores)")
    group.add_argument("--retries", type=int, default=1,
                       help=f"times a failed {what} is tried again (default 1)")


def _require_dask() -> None:
    if dask is None:
        raise ClusterError("Dask distributed is not installed: install the cluster extra "
                           "(pip install -e '.[cluster]')")


@contextlib.contextmanager
def cluster(scheduler: str | None = None, *, workers: int | None = None,
            timeout: float = TIMEOUT_S,
            allowed_failures: int = ALLOWED_FAILURES) -> Iterator[Client]:
    """A Dask client on a local cluster of this machine's cores, or on a running scheduler.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``); default: start a
        ``LocalCluster`` for the duration of the ``with`` block.
    workers : int, optional
        Local cluster only: worker processes, one thread each (default ``os.cpu_count()``).
    timeout : float
        Seconds a running scheduler has to answer and to show at least one worker.
    allowed_failures : int
        Local cluster only: how many worker processes a task may take down with it (each time
        it is rescheduled) before it fails with ``KilledWorker``.

    Yields
    ------
    distributed.Client
        Pass it to :func:`run_tasks`.

    Raises
    ------
    ClusterError
        Dask is not installed, or the scheduler cannot be reached or has no worker in time.
    """
    _require_dask()
    if scheduler:
        with _connect(scheduler, timeout) as client:
            yield client
        return
    n = (os.cpu_count() or 1) if workers is None else positive_int("workers", workers)
    if isinstance(allowed_failures, bool) or not isinstance(allowed_failures, int) \
            or allowed_failures < 0:
        raise ValueError(f"allowed_failures must be a non-negative integer, not "
                         f"{allowed_failures!r}")
    # memory_limit=0: no per-worker memory cap; Dask's would pause or restart a worker whose
    # task (a whole design elaborated in-process) needs more than its share of the machine;
    # the dashboard on a free port: two local clusters on one machine must not collide
    with dask.config.set({"distributed.scheduler.allowed-failures": allowed_failures}), \
            LocalCluster(n_workers=n, threads_per_worker=1, processes=True, memory_limit=0,
                         dashboard_address=":0", silence_logs=logging.ERROR) as local, \
            Client(local) as client:
        yield client


@contextlib.contextmanager
def _connect(scheduler: str, timeout: float) -> Iterator[Client]:
    """A client of the running ``scheduler``, with at least one worker."""
    try:
        client = Client(scheduler, timeout=timeout)
    except (OSError, TimeoutError) as e:
        raise ClusterError(f"cannot reach the Dask scheduler at {scheduler!r} within "
                           f"{timeout:g} s ({e}); is `dask scheduler` running there?") from None
    with client:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except TimeoutError:
            raise ClusterError(f"the Dask scheduler at {scheduler!r} has no worker after "
                               f"{timeout:g} s; start some with `dask worker {scheduler} "
                               f"--nthreads 1`") from None
        yield client


def _call(fn: Callable[..., Any], args: tuple, kwargs: Mapping[str, Any]) -> Any:
    """What a worker runs: the task's function (its keywords kept apart from Dask's own)."""
    return fn(*args, **kwargs)


def _describe(future) -> str:
    """A failed future's error, in words."""
    try:
        exc = future.exception()
    except CancelledError:
        return "cancelled (the scheduler lost it or the client disconnected)"
    if isinstance(exc, KilledWorker):
        return f"its worker process died while running it ({exc})"
    return f"{type(exc).__name__}: {exc}"


def _check_tasks(tasks: list, retries: int) -> None:
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be a non-negative integer, not {retries!r}")
    seen = set()
    for t in tasks:
        if not isinstance(t, Task):
            raise TypeError(f"run_tasks takes Task objects, not {type(t).__name__}: {t!r}")
        if t.name in seen:
            raise ValueError(f"two tasks are named {t.name!r}: names must be unique")
        seen.add(t.name)


def run_tasks(client: Client, tasks: Iterable[Task], *, retries: int = RETRIES,
              progress: bool = True, desc: str = "tasks",
              on_result: Callable[[int, Any], None] | None = None) -> list:
    """Run every task on the cluster; their results in submission order.

    Parameters
    ----------
    client : distributed.Client
        From :func:`cluster`.
    tasks : iterable of Task
        The work, each task independent of the others.
    retries : int
        Times a task that raised is tried again before it counts as failed.
    progress : bool
        Show a progress bar as tasks complete.
    desc : str
        The progress bar's label.
    on_result : callable, optional
        Called in this process as ``on_result(index, result)`` as each task finishes (in the
        order they finish), e.g. to save each result as soon as it exists.

    Returns
    -------
    list
        ``result`` of each task, in the order of ``tasks``.

    Raises
    ------
    ClusterError
        When any task failed (after its retries) or was lost: raised once the others have
        finished, naming each failed task and its error; ``results`` holds what finished.
    """
    tasks = list(tasks)
    _check_tasks(tasks, retries)
    run = uuid.uuid4().hex[:8]
    futures = [client.submit(_call, t.fn, t.args, dict(t.kwargs), key=f"{t.name}-{run}-{i}",
                             retries=retries, pure=False) for i, t in enumerate(tasks)]
    where = {f.key: i for i, f in enumerate(futures)}
    results: list = [None] * len(tasks)
    done = [False] * len(tasks)
    failures: dict[str, str] = {}
    with tqdm(total=len(tasks), desc=desc, unit="task", disable=not progress) as bar:
        for future in as_completed(futures):
            i = where[future.key]
            if future.status == "finished":
                results[i], done[i] = future.result(), True
                if on_result is not None:
                    on_result(i, results[i])
            else:
                failures[tasks[i].name] = _describe(future)
                bar.set_postfix(failed=len(failures))
            bar.update()
    missing = [t.name for t, ok in zip(tasks, done, strict=True) if not ok]
    if missing:
        raise ClusterError(_failure_message(len(tasks), retries, failures, missing),
                           results=results, failures=failures, missing=missing)
    return results


def _failure_message(n: int, retries: int, failures: Mapping[str, str],
                     missing: list[str]) -> str:
    shown = "; ".join(f"{name}: {error}" for name, error in list(failures.items())[:_SHOWN])
    more = f"; and {len(failures) - _SHOWN} more" if len(failures) > _SHOWN else ""
    lost = [m for m in missing if m not in failures]
    lost_text = f"; without a result: {', '.join(lost)}" if lost else ""
    return (f"{len(missing)} of {n} tasks did not complete (a failing task is retried {retries} "
            f"times): "
            f"{shown}{more}{lost_text}")
