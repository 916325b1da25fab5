"""Where shard functions run: in this process (``local``) or as tasks on a Ray cluster (``ray``).

Heavy steps are written as a pure function over one shard (``featurize_shard`` for gradient features); an
executor only decides where each call runs and hands results back to the caller as they finish, so the caller
(e.g. the resumable ``GradientStore`` writer) records each shard the moment it is done. Large read-only inputs
(models) are passed once as ``shared`` values: the Ray executor puts them in the object store a single time
instead of shipping them with every task. Nothing else in curation distributes work (DESIGN: no home-made pools).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from curation.errors import CurationError

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass(frozen=True, kw_only=True)
class ExecutorConfig:
    """Which executor runs shards, and for Ray, which cluster and how many CPUs a task takes."""

    kind: Literal["local", "ray"] = field(default="local", metadata={"help": "local (this process) | ray"})
    address: str = field(default="", metadata={"help": "Ray cluster address (ray://host:10001, auto); empty = "
                                                        "start a local Ray on this machine"})
    num_cpus: int = field(default=0, metadata={"help": "CPUs of a Ray started here; 0 = all of them"})
    cpus_per_task: float = field(default=1.0, metadata={"help": "CPUs reserved by each Ray shard task"})
    max_in_flight: int = field(default=0, metadata={"help": "Ray tasks submitted at once; 0 = 2 x cluster CPUs"})

    def __post_init__(self) -> None:
        if self.kind not in ("local", "ray"):
            raise ValueError(f"executor kind must be local or ray, got {self.kind!r}")
        if self.num_cpus < 0 or self.cpus_per_task <= 0 or self.max_in_flight < 0:
            raise ValueError("num_cpus and max_in_flight must be >= 0 and cpus_per_task > 0")


def map_shards(
    fn: Callable[..., Result],
    items: Sequence[Item],
    *,
    shared: Mapping[str, Any] | None = None,
    config: ExecutorConfig | None = None,
) -> Iterator[tuple[int, Result]]:
    """Yield ``(index, fn(items[index], **shared))`` for every item, in completion order."""
    config = config or ExecutorConfig()
    shared = dict(shared or {})
    if config.kind == "local":
        for index, item in enumerate(items):
            yield index, fn(item, **shared)
        return
    yield from _ray_map(fn, items, shared, config)


def _ray_map(
    fn: Callable[..., Result], items: Sequence[Item], shared: dict[str, Any], config: ExecutorConfig
) -> Iterator[tuple[int, Result]]:
    try:
        import ray
    except ImportError as exc:
        raise CurationError("executor 'ray' needs Ray: pip install 'curation[ray]'") from exc
    if not ray.is_initialized():
        ray.init(address=config.address or None, num_cpus=config.num_cpus or None, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    refs = {name: ray.put(value) for name, value in shared.items()}  # once, not once per task
    task = ray.remote(num_cpus=config.cpus_per_task)(_call)
    limit = config.max_in_flight or max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
    pending: dict[Any, int] = {}
    next_item = 0
    while next_item < len(items) or pending:
        while next_item < len(items) and len(pending) < limit:
            pending[task.remote(fn, items[next_item], **refs)] = next_item
            next_item += 1
        [done], _ = ray.wait(list(pending), num_returns=1)
        index = pending.pop(done)
        try:
            result = ray.get(done)
        except ray.exceptions.RayTaskError as exc:
            for ref in pending:
                ray.cancel(ref)
            raise CurationError(f"ray executor: shard {index} failed: {exc.cause!r}") from exc
        yield index, result


def _call(fn: Callable[..., Result], item: Any, **shared: Any) -> Result:
    """The Ray task body: Ray has already resolved the shared object refs passed as keyword arguments."""
    return fn(item, **shared)
