"""run_grid on a Dask LocalCluster: the same records as in-process, faults contained.

One two-worker cluster serves the whole module (starting one takes seconds). The scheduler
gives a task that killed its worker no second chance (``allowed-failures = 0``), so a kill
shows up as a failed run instead of a silent retry.
"""

import dask
import pytest

from entropic_ae.experiments import GridError, RunConfig, grid, run_grid

pytestmark = pytest.mark.slow

TOY = RunConfig.make("toy", "lin", n_train=256, epochs=2, batch_size=32, lr=1e-2)
COLUMNS = ["seed", "mse", "first_weight", "train_seconds"]


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=50)
        client = Client(cluster, set_as_default=False)
    yield client
    client.close()
    cluster.close()


def test_parallel_equals_serial_bit_for_bit(tmp_path, client):
    configs = grid(TOY, seed=[0, 1, 2, 3])
    serial = run_grid(configs, "serial", cache_dir=tmp_path / "serial", progress=False)
    parallel = run_grid(iter(configs), client, cache_dir=tmp_path / "parallel", progress=False)
    for column in ("mse", "first_weight"):
        assert serial[column].equals(parallel[column]), column
    assert not parallel["cached"].any() and parallel["error"].isna().all()


def test_runs_sharing_one_training_on_two_workers_corrupt_nothing(tmp_path, client):
    """Configs that differ only in measurement options train one model; on two workers at
    once they used to overwrite each other's checkpoint and leave 'corrupt' records."""
    base = TOY.replace(n_train=3000, epochs=4)
    configs = [base.replace(n_eval=n) for n in (16, 32, 64, 128, 256, 512)]
    table = run_grid(configs, client, cache_dir=tmp_path, progress=False)
    assert table["error"].isna().all() and table["first_weight"].nunique() == 1
    again = run_grid(configs, client, cache_dir=tmp_path, progress=False)
    assert again["cached"].all()


def test_a_request_no_worker_can_serve_fails_at_once(tmp_path, client):
    import time

    with pytest.raises(ValueError, match="no worker of the cluster has a GPU"):
        run_grid([TOY], client, cache_dir=tmp_path, device="cuda", progress=False)
    with pytest.raises(ValueError, match="workers must be >= 1"):
        run_grid([TOY], cache_dir=tmp_path, workers=-1, progress=False)
    start = time.perf_counter()
    with pytest.raises(ConnectionError, match="no Dask scheduler answered at 'tcp://127.0.0.1:9'"):
        run_grid([TOY], "tcp://127.0.0.1:9", cache_dir=tmp_path, progress=False)
    assert time.perf_counter() - start < 30


def test_a_failing_config_is_reported_and_the_rest_completes(tmp_path, client):
    bad = TOY.replace(fault="raise")
    configs = [TOY, bad, TOY.replace(seed=5)]
    with pytest.raises(GridError) as info:
        run_grid(configs, client, cache_dir=tmp_path, progress=False)
    message = str(info.value)
    assert "1 of 3 runs failed" in message and "'fault': 'raise'" in message, message
    assert "asked to fail" in message
    with pytest.warns(UserWarning, match="1 of 3 runs failed"):
        table = run_grid(configs, client, cache_dir=tmp_path, errors="report", progress=False)
    assert table["cached"].eq(True).tolist() == [True, False, True]
    assert table["error"].notna().tolist() == [False, True, False]


def test_a_killed_worker_loses_nothing_and_the_rerun_finishes(tmp_path, client):
    victim = TOY.replace(seed=9, fault=f"kill-once:{tmp_path / 'killed'}")
    configs = [*grid(TOY, seed=[10, 11, 12]), victim]
    # The victim's death can fail one more run: one Dask had queued on that worker. (One that
    # had finished there, its "finished" message unsent, is recovered from the cache.)
    with pytest.warns(UserWarning, match="[12] of 4 runs failed"):
        first = run_grid(configs, client, cache_dir=tmp_path / "cache", errors="report",
                         progress=False)
    assert (tmp_path / "killed").exists()
    failed = first["error"].notna()
    assert failed.iloc[3] and failed.sum() <= 2
    assert first["error"][failed].str.contains("KilledWorker").all()
    again = run_grid(configs, client, cache_dir=tmp_path / "cache", progress=False)
    assert again["cached"][~failed].all()  # every run reported finished was kept
    assert not again["cached"].iloc[3]  # the victim died before it trained
    assert again["error"].isna().all()
    done = ~failed.to_numpy()
    assert again[COLUMNS][done].equals(first[COLUMNS][done])
    # Whatever the cache held after the crash, cached or retrained, equals a clean run.
    clean = run_grid(configs[:3], "serial", cache_dir=tmp_path / "clean", progress=False)
    assert again["mse"].iloc[:3].tolist() == clean["mse"].tolist()


def test_a_lost_task_whose_run_was_stored_counts_as_finished(tmp_path):
    from entropic_ae.experiments.cluster import _outcome_of_lost_task

    lost = RuntimeError("KilledWorker: the worker died")
    outcome = _outcome_of_lost_task(TOY, str(tmp_path), None, lost)
    assert outcome == {"error": "RuntimeError: KilledWorker: the worker died"}
    stored = run_grid([TOY], "serial", cache_dir=tmp_path, progress=False)
    outcome = _outcome_of_lost_task(TOY, str(tmp_path), None, lost)
    assert "error" not in outcome and outcome["record"]["cached"]
    assert outcome["record"]["metrics"]["mse"] == stored["mse"].iloc[0]


def test_a_cached_grid_needs_no_cluster(tmp_path):
    configs = grid(TOY, seed=[0, 1])
    run_grid(configs, "serial", cache_dir=tmp_path, progress=False)
    table = run_grid(configs, "tcp://127.0.0.1:9", cache_dir=tmp_path, progress=False)
    assert table["cached"].all()


def test_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="RunConfig"):
        run_grid([TOY, "not a config"], "serial", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="errors"):
        run_grid([TOY], "serial", cache_dir=tmp_path, errors="ignore")
    with pytest.raises(TypeError, match="client"):
        run_grid([TOY], 42, cache_dir=tmp_path)


def _worker_env() -> dict:
    import os

    import torch
    from distributed import get_worker

    keys = ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS")
    timers = get_worker().periodic_callbacks
    return {**{k: os.environ.get(k) for k in keys}, "threads": torch.get_num_threads(),
            "profiler": "profile" in timers,
            "timers_ms": {k: timers[k].callback_time
                          for k in ("tick", "monitor", "memory_monitor")}}


def test_the_local_cluster_gives_its_workers_one_thread_no_malloc_trim_no_profiler(monkeypatch):
    """Dask's default MALLOC_TRIM_THRESHOLD_ made training steps 1.7× slower in its workers
    (each run then tunes the allocator itself, entropic_ae._alloc); its statistical profiler
    (a thread sampling every 10 ms) and its frequent housekeeping timers took time from the
    other worker, in the workers and in the scheduler alike."""
    import os

    from entropic_ae.experiments import cluster

    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")  # even when this process has it
    cluster.shutdown()
    try:
        env = cluster._local_client(1).submit(_worker_env, pure=False).result()
        scheduler = cluster._LOCAL["cluster"].scheduler.periodic_callbacks
        scheduler_ms = {k: scheduler[k].callback_time for k in ("tick", "monitor")}
    finally:
        cluster.shutdown()
    assert env == {"MALLOC_TRIM_THRESHOLD_": None, "OMP_NUM_THREADS": "1", "threads": 1,
                   "profiler": False,
                   "timers_ms": {"tick": 500, "monitor": 2000, "memory_monitor": 1000}}
    assert scheduler_ms == {"tick": 500, "monitor": 2000}
    assert os.environ["MALLOC_TRIM_THRESHOLD_"] == "65536", "this process's environment kept"


def test_named_groups_come_back_as_a_column(tmp_path):
    table = run_grid({"a": grid(TOY, seed=[0, 1]), "b": [TOY]}, "serial", cache_dir=tmp_path,
                     progress=False)
    assert table["group"].tolist() == ["a", "a", "b"]
    assert table.loc[table.group == "b", "mse"].item() == table["mse"].iloc[0]
