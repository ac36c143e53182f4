"""Where the sweep's batches run: in this process (`LocalBackend`) or sharded over a Ray cluster
(`RayBackend`; the optional `ray` extra, `requirements-ray.lock`).

Both take the same batches and call the same function on each, so on the same space and seed
they give identical numbers. Each Ray task is one vmapped batch; results stream back as tasks
finish. Ray's own task retries are off (`max_retries=0`) so that a failure reaches the driver,
which resubmits the batch - up to `retries` times, each one recorded in `retried` and reported -
and raises `SweepError` naming the batch when they are used up: no batch is dropped silently.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator


class SweepError(RuntimeError):
    """A sweep that could not evaluate every set."""


class LocalBackend:
    """Batches one after another in this process (vmapped inside each batch)."""

    name = "local"

    def __init__(self):
        self.retried: list[dict] = []

    def run(self, fn: Callable, evaluator, batches: list[list[dict]]) -> Iterator[tuple[int, dict]]:
        for i, sets in enumerate(batches):
            yield i, fn(evaluator, sets)

    def close(self) -> None:
        pass


def _task(fn, evaluator, sets, index):
    return index, fn(evaluator, sets)


class RayBackend:
    """Batches as Ray tasks (module docstring). `address`: an existing cluster ("auto", "ray://...");
    None starts a local instance with `workers` CPUs (default: all), shut down by `close`."""

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None, retries: int = 3):
        try:
            import ray
        except ImportError:
            raise SweepError("--backend ray needs the optional ray extra: `make ray`, or pip install -r "
                             "requirements-ray.lock (or pip install 'bayesmm[ray]')") from None
        self._ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            ray.init(address=address, num_cpus=workers if address is None else None, include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
        self.retries = retries
        self.retried: list[dict] = []

    def run(self, fn: Callable, evaluator, batches: list[list[dict]]) -> Iterator[tuple[int, dict]]:
        ray = self._ray
        shared = ray.put(evaluator)
        remote = ray.remote(num_cpus=1, max_retries=0)(_task)
        pending: dict = {}

        def submit(i: int, attempt: int) -> None:
            pending[remote.remote(fn, shared, batches[i], i)] = (i, attempt)

        for i in range(len(batches)):
            submit(i, 0)
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            i, attempt = pending.pop(ref)
            try:
                _, result = ray.get(ref)
            except ray.exceptions.RayError as err:
                if attempt >= self.retries:
                    raise SweepError(f"batch {i} ({len(batches[i])} sets) failed {attempt + 1} times; "
                                     f"the last error: {type(err).__name__}: {err}") from err
                self.retried.append({"batch": i, "attempt": attempt + 1, "error": type(err).__name__})
                submit(i, attempt + 1)
                continue
            yield i, result

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()


def make_backend(name: str, address: str | None = None, workers: int | None = None, retries: int = 3):
    """"local" or "ray" (module docstring)."""
    if name == "local":
        return LocalBackend()
    if name == "ray":
        return RayBackend(address, workers, retries)
    raise ValueError(f"unknown backend {name!r} (choose local or ray)")
