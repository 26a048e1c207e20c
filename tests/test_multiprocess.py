"""Two processes joined by jax.distributed on localhost (2 devices each) train like one process with
4 devices, through a preemption: SIGTERM to one of them stops both at the same step with a
checkpoint, and the resumed run ends where the one-process run ends (losses of every step and
final parameters).

Each two-process run costs a compilation (their persistent-cache keys differ from run to run), so
the test makes two: the interrupted one and its resumption."""
import json
import signal

import numpy as np
import pytest

from sbirjax import checkpoint
from sbirjax import main as entry
from tests import multiprocess_worker as worker

# Trains or builds a reference per module: the slow tier (pytest -m slow).
pytestmark = pytest.mark.slow

STEPS = 40
DEVICES_PER_PROCESS = 2


def spawn_pair(tmp, name, run, **flags):
    port = worker.free_port()
    return [worker.spawn(tmp / f"{name}{i}.log", devices=DEVICES_PER_PROCESS,
                         compile_cache=str(tmp / "jax_cache"),
                         coordinator_address=f"localhost:{port}",
                         num_processes=2, process_id=i, **run, **flags) for i in range(2)]


def wait_all(procs, tmp, name, timeout=300):
    codes = [p.wait(timeout=timeout) for p in procs]
    logs = "\n".join((tmp / f"{name}{i}.log").read_text()[-3000:] for i in range(len(procs)))
    return codes, logs


def train_losses(workdir):
    """Step -> loss, the records after a 'resume' replacing earlier ones of the same step."""
    return {r["step"]: r["loss"] for r in worker.metrics(workdir) if r["kind"] == "train"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two processes x 2 devices, SIGTERM to process 1 at step 3 or later, then resumed; beside it
    an uninterrupted run of 1 process x 4 devices."""
    tmp = tmp_path_factory.mktemp("mp")
    # A fresh data_dir: process 0 builds the dataset while process 1 waits at the barrier (the
    # single process starts once it exists).
    run = dict(data_dir=tmp / "tfds", steps=STEPS, checkpoint_every=STEPS)
    workdir = tmp / "two"
    pair = spawn_pair(tmp, "two", run, workdir=workdir)
    seen = worker.wait_for_step(pair[0], workdir, 3)
    pair[1].send_signal(signal.SIGTERM)  # a maintenance event on one worker only
    one = worker.spawn(tmp / "one0.log", devices=2 * DEVICES_PER_PROCESS,
                       compile_cache=str(tmp / "jax_cache"), workdir=tmp / "one",
                       out=tmp / "one.npz", **run)
    codes, logs = wait_all(pair, tmp, "two")
    stopped = [r["step"] for r in worker.metrics(workdir) if r["kind"] == "preempted"]
    latest = checkpoint.Checkpointer(str(workdir)).latest_step()
    first_log = (tmp / "two0.log").read_text()
    codes_resumed, logs_resumed = wait_all(
        spawn_pair(tmp, "resumed", run, workdir=workdir, out=tmp / "two.npz"), tmp, "resumed")
    assert codes_resumed == [0, 0], logs_resumed
    assert wait_all([one], tmp, "one")[0] == [0]
    return dict(tmp=tmp, seen=seen, codes=codes, logs=logs, stopped=stopped, latest=latest,
                first_log=first_log)


def test_sigterm_to_one_process_stops_both_at_the_same_step(runs):
    assert runs["codes"] == [entry.EXIT_PREEMPTED] * 2, runs["logs"]
    assert "in 2 process(es)" in runs["first_log"]
    stopped = runs["stopped"]
    assert len(stopped) == 1 and runs["seen"] <= stopped[0] < STEPS, (stopped, runs["seen"])
    assert runs["latest"] == stopped[0]


def test_two_processes_match_one_process(runs):
    tmp = runs["tmp"]
    one, two = np.load(tmp / "one.npz"), np.load(tmp / "two.npz")
    assert sorted(one.files) == sorted(two.files)
    for name in one.files:
        np.testing.assert_allclose(one[name], two[name], rtol=1e-4, atol=1e-6, err_msg=name)
    l1, l2 = train_losses(tmp / "one"), train_losses(tmp / "two")
    assert sorted(l1) == sorted(l2) == list(range(1, STEPS + 1))
    np.testing.assert_allclose([l1[s] for s in l1], [l2[s] for s in l1], rtol=1e-5, atol=1e-6)
    assert len(set(np.round(list(l1.values()), 6))) > 1
    # Evaluation (embeddings gathered from both processes) agrees too.
    r1, r2 = (json.loads((tmp / d / "results.json").read_text()) for d in ("one", "two"))
    np.testing.assert_allclose(r1["test"]["acc@10"], r2["test"]["acc@10"])
