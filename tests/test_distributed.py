"""Data-parallel runs on a real local Ray cluster (2 CPU workers, gloo): one run covers parity
with one process, the run's folder layout, the refusals inside a worker, and a worker's failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import layerflow as lf
from layerflow.cloud.train_workers import placement_problem

ray = pytest.importorskip("ray")
pytest.importorskip("ray.train.torch")
pytestmark = pytest.mark.slow  # a Ray cluster and Ray Train worker groups


@pytest.fixture(scope="module")
def cluster():
    """One local Ray cluster of 2 CPUs for the module; each run's driver joins it via $RAY_ADDRESS."""
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


SCRIPT = textwrap.dedent("""
    import os, sys
    import numpy as np
    from layerflow import keras
    from layerflow.fastfit.distributed import DistributedFitError

    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int32")
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    history = model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
    np.savez(sys.argv[1], *model.get_weights(), loss=np.array(history.history["loss"]))
    adam = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(2)])
    adam.compile(optimizer=keras.optimizers.Adam(0.01), metrics=["accuracy"],
                 loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = adam.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
    np.savez(sys.argv[1].replace(".npz", "-adam.npz"), *adam.get_weights(), loss=np.array(history.history["loss"]),
             accuracy=np.array(history.history["accuracy"]))
    if len(sys.argv) > 2:  # the distributed run: what it must refuse, then a worker's failure
        import torch.distributed as dist
        def batches():
            while True:
                yield x[:16], y[:16]
        for name, attempt in (("generator", lambda: model.fit(batches(), steps_per_epoch=2, verbose=0)),
                              ("odd batch", lambda: model.fit(x, y, batch_size=33, verbose=0))):
            try:
                attempt()
            except DistributedFitError as error:
                print(f"refused {name}: {error}")
        class Custom(keras.Sequential):
            def train_step(self, data):
                return super().train_step(data)
        custom = Custom([keras.Input((8,)), keras.layers.Dense(2)])
        custom.compile(optimizer="sgd", loss="mse")
        try:
            custom.fit(x, np.zeros((256, 2), "float32"), verbose=0)
        except DistributedFitError as error:
            print(f"refused custom: {error}")
        print(f"rank {dist.get_rank()} done", flush=True)
        dist.barrier()  # both ranks have said so before rank 1 fails (its failure stops rank 0)
        if dist.get_rank() == 1:
            raise RuntimeError("worker one breaks after training")
""")


def test_bad_worker_counts_are_refused_before_anything_runs(tmp_path):
    script = tmp_path / "train.py"
    script.write_text("print('never')\n")
    for bad in (0, -1, 1.5, True):
        with pytest.raises(lf.LayerflowError, match="workers"):
            lf.training_run(script, runs_dir=tmp_path / "runs", workers=bad, echo=False)
    assert not (tmp_path / "runs").exists() or not any(
        p.is_dir() and p.name[0].isdigit() for p in (tmp_path / "runs").iterdir()
    )
    problem = placement_problem(8, 1, 0, {"CPU": 2.0})
    assert "8 CPUs (8 workers x 1)" in problem and "has 2" in problem
    assert "GPU" in placement_problem(2, 1, 1, {"CPU": 4.0}) and placement_problem(2, 1, 0, {"CPU": 2.0}) is None


def test_more_workers_than_the_cluster_places_is_refused_with_the_resources(tmp_path, monkeypatch, cluster):
    monkeypatch.setenv("RAY_ADDRESS", cluster)
    script = tmp_path / "train.py"
    script.write_text("print('never ran')\n")
    with pytest.raises(lf.LayerflowError, match=r"asked for 3 CPUs \(3 workers x 1\) but the cluster has 2"):
        lf.training_run(script, runs_dir=tmp_path / "runs", workers=3, echo=False)
    (run,) = lf.ls_runs(runs_dir=tmp_path / "runs").to_dict("records")
    assert run["status"] == "failed"
    assert "never ran" not in (tmp_path / "runs" / run["id"] / "output.log").read_text()


def test_two_workers_train_like_one_process_and_record_one_run(tmp_path, monkeypatch, cluster):
    monkeypatch.setenv("RAY_ADDRESS", cluster)
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    subprocess.run([sys.executable, str(script), str(tmp_path / "one.npz")], check=True, env=env, cwd=tmp_path)

    run = lf.training_run(
        script, runs_dir=tmp_path / "runs", workers=2, args=[str(tmp_path / "two.npz"), "dist"], echo=False
    )

    # Parity: the same weights and epoch losses as one process with the same global batch.
    for optimizer in ("", "-adam"):
        one, two = np.load(tmp_path / f"one{optimizer}.npz"), np.load(tmp_path / f"two{optimizer}.npz")
        for name in one.files:
            np.testing.assert_allclose(two[name], one[name], rtol=1e-5, atol=1e-6, err_msg=f"{optimizer} {name}")
    one = np.load(tmp_path / "one.npz")
    # One run: rank 0 recorded, the others' output kept, the world recorded.
    run_dir = tmp_path / "runs" / run["id"]
    assert run["distributed"]["world_size"] == 2
    assert [w["rank"] for w in run["distributed"]["workers"]] == [0, 1]
    assert all(w["devices"] == ["cpu"] for w in run["distributed"]["workers"])
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2, 3, 4]  # rank 0's epochs of the two fits, not twice
    assert lines[1]["loss"] == pytest.approx(float(one["loss"][-1]), rel=1e-5)
    output, other = (run_dir / "output.log").read_text(), (run_dir / "workers" / "1.log").read_text()
    assert "rank 0 done" in output and "rank 1 done" not in output
    assert "rank 1 done" in other and output.count("rank 0 done") == 1
    # Refused in the worker, before training: an unshardable generator, an uneven batch, a custom train_step.
    assert "refused generator:" in output and "cannot be sharded" in output
    assert "refused odd batch:" in output and "divide evenly over the 2 workers" in output
    assert "refused custom:" in output and "overrides train_step" in output
    # Worker 1's failure fails the run with its traceback; what was recorded stays.
    assert run["status"] == "failed"
    assert run["error"] == "worker 1 failed: RuntimeError: worker one breaks after training"
    assert "Traceback" in output and "worker one breaks" in output
    assert (run_dir / "keras.json").is_file()


def test_arrays_are_sharded_per_epoch_as_distributed_sampler_does():
    import torch
    from torch.utils.data import DistributedSampler

    from layerflow.fastfit.distributed import _ShardedArrays

    x = np.arange(10, dtype="float32").reshape(10, 1)
    for shuffle in (False, True):
        shards = [_ShardedArrays((x, x[:, 0], None), 2, rank, 3, shuffle) for rank in range(3)]
        samplers = [DistributedSampler(range(10), num_replicas=3, rank=rank, shuffle=shuffle) for rank in range(3)]
        for epoch in range(3):
            for shard, sampler in zip(shards, samplers):
                shard.on_epoch_begin()
                sampler.set_epoch(epoch)
                assert list(shard.indices) == list(sampler), (shuffle, epoch)
                assert len(shard) == 2  # 4 samples a rank (10 padded to 12), local batch 2
                batch_x, batch_y = shard[1]
                assert batch_y.tolist() == [float(i) for i in list(sampler)[2:4]]
        union = sorted(i for shard in shards for i in shard.indices)
        assert set(union) == set(range(10)) and len(union) == 12  # equal shards, padded by repeating
    assert not torch.distributed.is_initialized()
