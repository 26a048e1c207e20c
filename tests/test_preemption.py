"""Crashes and preemption: SIGKILL at random steps and SIGTERM, then resume, end bit for bit where
an uninterrupted run ends; SIGTERM saves the step it interrupts and exits with status 143.

Runs of the tiny config in subprocesses (tests/multiprocess_worker.py), 2 fake CPU devices each."""
import os
import random
import signal

import numpy as np
import pytest

from sbirjax import checkpoint, distributed
from sbirjax import main as entry
from sbirjax.data import tfds_io
from tests import multiprocess_worker as worker

# Trains or builds a reference per module: the slow tier (pytest -m slow).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("tfds"))
    tfds_io.prepared_builders(worker.tiny_config(path, steps=2).data, log=lambda *_: None)
    return path


def test_sigterm_is_flagged_at_the_next_check_and_the_handler_restored():
    before = signal.getsignal(signal.SIGTERM)
    with distributed.PreemptionWatch() as watch:
        assert not watch.reached(1)
        os.kill(os.getpid(), signal.SIGTERM)  # caught: the test process lives on
        assert watch.reached(2)
    assert signal.getsignal(signal.SIGTERM) is before


def test_sigkill_twice_then_sigterm_then_resume_equals_uninterrupted_run(data_dir, tmp_path):
    steps, devices = 12, 2
    cache = str(tmp_path / "jax_cache")
    run = dict(devices=devices, compile_cache=cache, data_dir=data_dir, steps=steps,
               checkpoint_every=1)
    ref = worker.spawn(tmp_path / "ref.log", workdir=tmp_path / "ref", out=tmp_path / "ref.npz",
                       **run)
    assert ref.wait(timeout=300) == 0, (tmp_path / "ref.log").read_text()

    workdir, log = str(tmp_path / "run"), tmp_path / "run.log"
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    kill_at = sorted(rng.sample(range(2, steps - 3), 3))  # two SIGKILLs, then one SIGTERM
    for n, step in enumerate(kill_at):
        after = len(worker.metrics(workdir))
        proc = worker.spawn(log, workdir=workdir, **run)
        seen = worker.wait_for_step(proc, workdir, step, after=after)
        if seen >= steps:
            pytest.fail(f"the run ended before it could be interrupted (seed {seed})")
        if n < 2:
            proc.kill()  # SIGKILL: no chance to clean up, maybe in the middle of a save
            proc.wait(timeout=60)
            last = checkpoint.Checkpointer(workdir).latest_step()  # a complete one, or none yet
            assert last is None or last <= seen + 1
        else:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=120) == entry.EXIT_PREEMPTED, log.read_text()
            stopped = [r["step"] for r in worker.metrics(workdir) if r["kind"] == "preempted"]
            assert len(stopped) == 1 and stopped[0] >= step
            assert checkpoint.Checkpointer(workdir).latest_step() == stopped[0]
            rows = [r for r in worker.metrics(workdir) if r["kind"] == "train"]
            assert rows[-1]["step"] == stopped[0]  # logged up to the step saved, nothing after
    # What a save cut short leaves behind (a temporary folder) is never taken for a checkpoint.
    os.makedirs(os.path.join(workdir, "checkpoints", f"{steps}.orbax-checkpoint-tmp-1234", "state"))
    assert checkpoint.Checkpointer(workdir).latest_step() == stopped[0]
    final = worker.spawn(log, workdir=workdir, out=tmp_path / "final.npz", **run)
    assert final.wait(timeout=300) == 0, log.read_text()

    expected, got = np.load(tmp_path / "ref.npz"), np.load(tmp_path / "final.npz")
    assert sorted(expected.files) == sorted(got.files)
    for name in expected.files:
        assert np.array_equal(expected[name], got[name]), (name, f"seed {seed}, kills {kill_at}")
    resumes = [r["step"] for r in worker.metrics(workdir) if r["kind"] == "resume"]
    assert len(resumes) >= 2, resumes  # 3, unless the first kill came before any save completed
