"""Joining a multi-process job only when asked, and workdir paths that may live on GCS."""
import json

import pytest

from sbirjax import checkpoint, distributed
from sbirjax.paths import is_remote
from sbirjax.reporting import JsonlLog

SLURM = {"SLURM_JOB_ID": "7", "SLURM_STEP_NODELIST": "node[1-2]", "SLURM_PROCID": "0",
         "SLURM_LOCALID": "0"}


@pytest.fixture
def clean_env(monkeypatch):
    for key in (*SLURM, "SLURM_NTASKS", "OMPI_MCA_orte_hnp_uri", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


def test_environment_detection(clean_env):
    assert distributed.detected_environment() is None  # a plain process (this CPU test run)
    for k, v in SLURM.items():
        clean_env.setenv(k, v)
    clean_env.setenv("SLURM_NTASKS", "1")
    assert distributed.detected_environment() is None  # a one-task job step needs no coordinator
    clean_env.setenv("SLURM_NTASKS", "2")
    assert distributed.detected_environment() == "slurm"
    for k in (*SLURM, "SLURM_NTASKS"):
        clean_env.delenv(k)
    clean_env.setenv("OMPI_MCA_orte_hnp_uri", "1531576320.0;tcp://10.96.0.1:34911")
    clean_env.setenv("OMPI_COMM_WORLD_SIZE", "4")
    assert distributed.detected_environment() == "openmpi"


def test_plain_process_does_not_initialize(clean_env):
    assert distributed.initialize() is False


def test_checkpoint_dir_keeps_gcs_paths_and_makes_local_ones_absolute(tmp_path, monkeypatch):
    assert str(checkpoint.checkpoint_dir("gs://bucket/runs/a")) == "gs://bucket/runs/a/checkpoints"
    assert is_remote("gs://bucket/runs/a") and not is_remote(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert str(checkpoint.checkpoint_dir("runs/a")) == str(tmp_path / "runs" / "a" / "checkpoints")


@pytest.mark.parametrize("rewrite", [False, True], ids=["append", "rewrite_as_on_gcs"])
def test_jsonl_log_keeps_earlier_runs_lines(tmp_path, rewrite):
    path = tmp_path / "metrics.jsonl"
    for run in range(2):
        log = JsonlLog(path, rewrite=rewrite, flush_every_s=3600)
        for step in range(3):
            log.write(json.dumps({"run": run, "step": step}))
        if rewrite and run == 0:
            assert not path.exists()  # held back until a flush or close
        log.close()
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["run"], r["step"]) for r in rows] == [(r, s) for r in range(2) for s in range(3)]
