"""Boosted trees trained by several workers at once: Ray Train's ``XGBoostTrainer``.

``BoostedTreesClassifier/Regressor.train(data, workers=N)`` lands here. The feature spec is
fitted once on the driver (as in one process); then N Ray Train workers each read their own
shard of the data (``Dataset.shard(N, rank)``: every N-th row, so no worker holds another's
rows), build their own external-memory matrix, and grow the same trees together through
XGBoost's collective (Ray's ``XGBoostConfig`` starts the tracker; layerflow writes no
communication of its own). XGBoost's per-row state, the part external memory does not bound,
is therefore split N ways.

Checkpoints: rank 0 writes the estimator's ``model_dir`` after every round (the same files as
one process) and Ray Train keeps a checkpoint per round (``RayTrainReportCallback``), so with
``max_failures=K`` (Ray Train's ``FailureConfig``) a worker that dies restarts the group from
the last round. Everything checkable is checked before any worker starts: the number of
workers, data that cannot be sharded, fewer rows than workers, and a cluster that cannot
place the workers (named with its resources, after at most ``placement_timeout`` seconds).
"""

from __future__ import annotations

import inspect
import os
import shutil
import tempfile
import time
import warnings
from typing import Any

import numpy as np

from layerflow.estimators import tracking
from layerflow.estimators.errors import EstimatorError
from layerflow.estimators.inputs import as_dataset, check_columns, first_batch, spec_columns

DEFAULT_PLACEMENT_TIMEOUT_S = 30.0


class DistributedTrainingError(EstimatorError, RuntimeError):
    """A distributed training that failed on a worker; the message holds that worker's traceback."""


def _check_counts(workers: Any, max_failures: Any, cpus_per_worker: Any) -> None:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise EstimatorError(f"workers={workers!r} must be a whole number >= 1 (the Ray Train workers to train on).")
    if isinstance(max_failures, bool) or not isinstance(max_failures, int) or max_failures < 0:
        raise EstimatorError(
            f"max_failures={max_failures!r} must be a whole number >= 0 "
            "(how many times a failed worker group restarts from its last checkpoint)."
        )
    if isinstance(cpus_per_worker, bool) or not isinstance(cpus_per_worker, (int, float)) or cpus_per_worker <= 0:
        raise EstimatorError(f"cpus_per_worker={cpus_per_worker!r} must be a number above 0.")


def _check_shardable(data: Any) -> None:
    if (
        inspect.isgenerator(data)
        or inspect.isasyncgen(data)
        or (hasattr(data, "__next__") and not hasattr(data, "chunks"))
    ):
        raise EstimatorError(
            f"A {type(data).__name__} cannot be sharded across workers: each worker must read its own part of "
            "the data, and an iterator can be read only once, by one process. Pass a lf.data Dataset, a DataFrame "
            "or a CSV/Parquet path."
        )


def _count_rows_up_to(dataset: Any, limit: int) -> int:
    """Rows of ``dataset``, counted up to ``limit`` (reads only as many blocks as that takes)."""
    try:
        return min(len(dataset), limit) if dataset.kind == "rows" else _count_streamed(dataset, limit)
    except TypeError:  # UnknownLengthError: files, filters
        return _count_streamed(dataset, limit)


def _count_streamed(dataset: Any, limit: int) -> int:
    rows = 0
    for chunk in dataset.chunks():
        rows += len(next(iter(chunk.values()))) if chunk else 0
        if rows >= limit:
            break
    return rows


def _connect_ray() -> Any:
    try:
        import ray
        import ray.train.xgboost
    except ImportError:
        raise EstimatorError(
            "Training on several workers needs Ray Train: pip install 'layerflow[ray]' (ray[train])."
        ) from None
    if not ray.is_initialized():
        # RAY_ADDRESS (or a cluster started with `ray start` here), else a local cluster in this process.
        ray.init(log_to_driver=False, configure_logging=False)
    return ray


def _wait_for_placement(ray: Any, workers: int, cpus_per_worker: float, timeout: float) -> None:
    """Fails at once when the cluster could never place the workers, or after ``timeout`` while it is busy."""
    needed = workers * cpus_per_worker
    total = ray.cluster_resources().get("CPU", 0.0)
    if needed > total:
        raise EstimatorError(
            f"workers={workers} need {needed:g} CPU ({cpus_per_worker:g} per worker), but the Ray cluster has "
            f"{total:g} CPU in all ({ray.cluster_resources()}); use at most {int(total // cpus_per_worker)} "
            "workers, fewer CPUs per worker, or a larger cluster."
        )
    deadline = time.monotonic() + timeout
    while True:
        free = ray.available_resources().get("CPU", 0.0)
        if free >= needed:
            return
        if time.monotonic() > deadline:
            raise EstimatorError(
                f"workers={workers} need {needed:g} free CPU ({cpus_per_worker:g} per worker); the Ray cluster has "
                f"{total:g} CPU but only {free:g} stayed free for {timeout:g} s (other work holds the rest). "
                "Wait for it to finish, or use fewer workers."
            )
        time.sleep(0.5)


def _train_loop_per_worker(config: dict[str, Any]) -> None:
    """One worker: its shard of the data -> an external-memory matrix -> the shared trees."""
    import ray.train
    import xgboost as xgb
    from ray.train.xgboost import RayTrainReportCallback

    from layerflow.estimators.tree_batches import DMatrixBatches

    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    estimator, on_epoch_end = config["estimator"], config["on_epoch_end"]
    os.environ.update(config["run_env"] if rank == 0 else {})  # only rank 0 records into the run
    if rank != 0:
        estimator.model_dir = None  # model_dir checkpoints come from rank 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:  # a restart after a failure: resume from the last round
        estimator.booster = RayTrainReportCallback.get_model(checkpoint)
        estimator.booster.feature_names = estimator._feature_names
    done = estimator.booster.num_boosted_rounds() if estimator.booster is not None else 0
    target = config["target"]
    if done >= target:
        return

    class Checkpoint(xgb.callback.TrainingCallback):
        def after_iteration(self, model, epoch, evals_log):
            estimator.booster = model
            estimator.epochs_done = estimator.global_step = model.num_boosted_rounds()
            if rank == 0:
                estimator._checkpoint()
                metrics = {f"train_{name}": float(values[-1]) for name, values in evals_log.get("train", {}).items()}
                tracking.record_epoch(estimator.epochs_done, metrics)
            stop = False
            if on_epoch_end is not None:
                _, stop = on_epoch_end(estimator, estimator.epochs_done)
            return bool(stop)

    shard = config["dataset"].shard(world, rank)
    with tempfile.TemporaryDirectory(prefix=f"layerflow-xgb-rank{rank}-") as cache:
        data_iter = DMatrixBatches.make(estimator, shard, os.path.join(cache, "pages"))
        matrix = xgb.ExtMemQuantileDMatrix(
            data_iter, max_bin=estimator.max_bin, missing=np.nan, nthread=estimator.n_threads
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*manually specified the `updater`")
            xgb.train(
                estimator.params(),
                matrix,
                num_boost_round=target - done,
                xgb_model=estimator.booster,
                evals=[(matrix, "train")] if config["evals"] else [],
                verbose_eval=False,
                callbacks=[Checkpoint(), RayTrainReportCallback(frequency=1, checkpoint_at_end=True)],
            )
        del matrix, data_iter


def train_on_workers(
    estimator: Any,
    data: Any,
    epochs: int | None = None,
    steps: int | None = None,
    workers: int = 2,
    max_failures: int = 0,
    cpus_per_worker: float = 1,
    placement_timeout: float = DEFAULT_PLACEMENT_TIMEOUT_S,
    _on_epoch_end: Any = None,
) -> Any:
    """Trains a boosted-trees estimator on ``workers`` Ray Train workers (XGBoost's collective).

    Args:
        estimator: a ``BoostedTreesClassifier`` or ``BoostedTreesRegressor``.
        data: a lf.data Dataset, a DataFrame or a CSV/Parquet path (not an iterator: it is sharded).
        epochs: boosting rounds in all (counting those in model_dir); steps: this many more rounds.
        workers: how many Ray Train workers (each reads every ``workers``-th row).
        max_failures: how many times a failed worker group restarts from the last round's checkpoint.
        cpus_per_worker: CPUs each worker reserves (XGBoost's ``nthread`` unless ``n_threads`` is set).
        placement_timeout: seconds to wait for a busy cluster to free the workers' CPUs.

    Returns:
        The estimator, trained (its booster the one every worker grew).

    Raises:
        EstimatorError: bad counts, data that cannot be sharded, fewer rows than workers, a cluster
            that cannot place the workers; DistributedTrainingError: a worker failed (its traceback
            is in the message).

    Example:
        >>> est = lf.estimators.BoostedTreesClassifier(label="y", n_trees=50, seed=1)
        >>> est.train("big/*.csv", workers=4, max_failures=2)
    """
    _check_counts(workers, max_failures, cpus_per_worker)
    for name, value in (("epochs", epochs), ("steps", steps)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise EstimatorError(f"{name}={value!r} must be a positive whole number.")
    if epochs is not None and steps is not None:
        raise EstimatorError("Give epochs= or steps=, not both.")
    _check_shardable(data)
    dataset = as_dataset(data)
    rows = _count_rows_up_to(dataset, workers)
    if rows < workers:
        raise EstimatorError(
            f"workers={workers} is more than the {rows} row(s) of the data: every worker needs "
            f"rows of its own; use at most {rows} workers."
        )
    estimator._check_data(dataset)
    estimator._prepare_spec(dataset)
    check_columns(first_batch(dataset), spec_columns(estimator.spec), "feature spec column")
    done = estimator.booster.num_boosted_rounds() if estimator.booster is not None else 0
    target = min(estimator.n_trees, epochs) if epochs is not None else estimator.n_trees
    if steps is not None:
        target = min(estimator.n_trees, done + steps)
    if target > done:
        ray = _connect_ray()
        _wait_for_placement(ray, workers, cpus_per_worker, placement_timeout)
        booster = _fit_on_ray(estimator, dataset, target, workers, max_failures, cpus_per_worker, _on_epoch_end)
        estimator.booster = booster
        estimator.booster.feature_names = estimator._feature_names
        estimator.epochs_done = estimator.global_step = booster.num_boosted_rounds()
        estimator._checkpoint()
    tracking.save_to_run(estimator)
    return estimator


def _fit_on_ray(
    estimator: Any,
    dataset: Any,
    target: int,
    workers: int,
    max_failures: int,
    cpus_per_worker: float,
    on_epoch_end: Any,
) -> Any:
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.xgboost import RayTrainReportCallback, XGBoostTrainer

    storage = tempfile.mkdtemp(prefix="layerflow-raytrain-")
    config = {
        "estimator": estimator,
        "dataset": dataset,
        "target": target,
        "on_epoch_end": on_epoch_end,
        "run_env": tracking.run_environment(),
        "evals": tracking.run_model_dir() is not None,
    }
    try:
        trainer = XGBoostTrainer(
            _train_loop_per_worker,
            train_loop_config=config,
            scaling_config=ScalingConfig(num_workers=workers, resources_per_worker={"CPU": cpus_per_worker}),
            run_config=RunConfig(
                name="layerflow-trees", storage_path=storage, failure_config=FailureConfig(max_failures=max_failures)
            ),
        )
        try:
            result = trainer.fit()
        except Exception as error:
            raise DistributedTrainingError(f"Training on {workers} workers failed:\n{error}") from error
        if result.checkpoint is None:
            raise DistributedTrainingError(f"Training on {workers} workers ended without a checkpoint.")
        return RayTrainReportCallback.get_model(result.checkpoint)
    finally:
        shutil.rmtree(storage, ignore_errors=True)
