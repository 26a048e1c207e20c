"""launch/tpu.py: the gcloud commands each subcommand prints in a dry run, argument checks, and
the scripts it runs on the workers, executed here by bash against a fake home directory.

No test reaches Google Cloud: runs without --dry-run find a fake gcloud first on PATH (it records
its arguments), or no gcloud at all.
"""
from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "launch", "tpu.py")
ZONE = "us-west4-a"

_spec = importlib.util.spec_from_file_location("sbirjax_launch_tpu", SCRIPT)
tpu = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tpu)


def dry(capsys, *argv):
    """Runs a subcommand with --dry-run; returns the printed commands as argument lists."""
    argv = list(argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    rc = tpu.main(argv[:cut] + ["--dry-run"] + argv[cut:])
    out, err = capsys.readouterr()
    assert rc == 0, err
    lines = out.splitlines()
    assert lines and all(line.startswith("+ gcloud ") for line in lines), out
    return [shlex.split(line[2:]) for line in lines]


def fails(capsys, *argv, dry_run=True):
    argv = list(argv)
    if dry_run:
        argv.insert(1, "--dry-run")
    rc = tpu.main(argv)
    out, err = capsys.readouterr()
    assert rc == 2, (out, err)
    assert out == ""  # nothing to run was printed
    assert "error:" in err and "Traceback" not in err
    return err


def command_of(cmd):
    """The --command=... script of an ssh command."""
    (script,) = [x[len("--command="):] for x in cmd if x.startswith("--command=")]
    return script


# ---------------------------------------------------------------------------------------------
# create


@pytest.mark.parametrize("accel,version", [
    ("v5litepod-16", "v2-alpha-tpuv5-lite"), ("v4-32", "tpu-ubuntu2204-base"),
    ("v3-8", "tpu-ubuntu2204-base"), ("v5p-8", "v2-alpha-tpuv5"), ("v6e-8", "v2-alpha-tpuv6e")])
def test_create_picks_the_runtime_version_per_family(capsys, accel, version):
    (cmd,) = dry(capsys, "create", "sbir-pod", f"--zone={ZONE}", f"--type={accel}")
    assert cmd == ["gcloud", "compute", "tpus", "tpu-vm", "create", "sbir-pod", f"--zone={ZONE}",
                   f"--accelerator-type={accel}", f"--version={version}"]


def test_create_flags(capsys):
    (cmd,) = dry(capsys, "create", "sbir-pod", "--zone", ZONE, "--accelerator-type", "v4-16",
                 "--version", "tpu-ubuntu2204-base-custom", "--spot", "--project", "my-proj",
                 "--", "--internal-ips", "--labels=team=sbir")
    assert cmd[4:6] == ["create", "sbir-pod"]
    assert "--version=tpu-ubuntu2204-base-custom" in cmd and "--spot" in cmd
    assert "--preemptible" not in cmd
    assert cmd[-3:] == ["--internal-ips", "--labels=team=sbir", "--project=my-proj"]
    (cmd,) = dry(capsys, "create", "sbir-pod", f"--zone={ZONE}", "--type=v3-8", "--preemptible")
    assert "--preemptible" in cmd and "--spot" not in cmd


@pytest.mark.parametrize("argv,needle", [
    (["create", f"--zone={ZONE}", "--type=v4-8"], "missing the slice NAME"),
    (["create", "sbir", "--type=v4-8"], "missing --zone"),
    (["create", "sbir", "--zone=us-west4", "--type=v4-8"], "a region such as us-west4"),
    (["create", "Sbir_Pod", f"--zone={ZONE}", "--type=v4-8"], "bad slice name"),
    (["create", "sbir", f"--zone={ZONE}"], "missing --type"),
    (["create", "sbir", f"--zone={ZONE}", "--type=v4"], "expected FAMILY-SIZE"),
    (["create", "sbir", f"--zone={ZONE}", "--type=v5e-16"], "--type=v5litepod-16"),
    (["create", "sbir", f"--zone={ZONE}", "--type=v9x-8"], "pass one with --version"),
    (["create", "sbir", f"--zone={ZONE}", "--type=v4-8", "--", "oops"], "only gcloud flags"),
    (["create", "sbir", f"--zone={ZONE}", "--type=v4-8", "--bogus"], "unrecognized arguments"),
])
def test_create_rejects_bad_arguments(capsys, argv, needle):
    assert needle in fails(capsys, *argv)


def test_spot_and_preemptible_exclude_each_other(capsys):
    with pytest.raises(SystemExit) as e:
        tpu.main(["create", "sbir", f"--zone={ZONE}", "--type=v4-8", "--spot", "--preemptible"])
    assert e.value.code == 2
    assert "not allowed with" in capsys.readouterr().err


def test_missing_command(capsys):
    assert tpu.main([]) == 2
    assert "missing the COMMAND" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# setup


def test_setup_local_copies_to_all_workers_then_installs(capsys):
    scp, ssh = dry(capsys, "setup", "sbir-pod", f"--zone={ZONE}", "--local")
    assert scp[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "scp"]
    assert scp[5].endswith("sbirjax-src.tar.gz") and scp[6] == "sbir-pod:sbirjax-src.tar.gz"
    assert f"--zone={ZONE}" in scp and "--worker=all" in scp
    assert ssh[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "sbir-pod"]
    assert f"--zone={ZONE}" in ssh and "--worker=all" in ssh
    script = command_of(ssh)
    assert "tar -xzf" in script and "git clone" not in script
    assert ("-m pip install -q -e \"$HOME/sbirjax\" 'jax[tpu]==0.10.2' gcsfs==2026.10.1 "
            "google-cloud-storage==3.17.1" in script)
    assert "python3.11 -m venv" in script and "python3.11-venv" in script


@pytest.mark.parametrize("spec,url,ref", [
    ("https://github.com/me/sbirjax", "https://github.com/me/sbirjax", None),
    ("https://github.com/me/sbirjax.git@v0.1", "https://github.com/me/sbirjax.git", "v0.1"),
    ("https://github.com/me/sbirjax@feature/multi-host", "https://github.com/me/sbirjax",
     "feature/multi-host"),
    ("git@github.com:me/sbirjax.git", "git@github.com:me/sbirjax.git", None),
    ("git@github.com:me/sbirjax.git@84c1924", "git@github.com:me/sbirjax.git", "84c1924"),
    ("https://user@example.com/me/sbirjax", "https://user@example.com/me/sbirjax", None),
])
def test_repo_ref_split(spec, url, ref):
    assert tpu.split_repo(spec) == (url, ref)


def test_setup_repo_clones_on_all_workers(capsys):
    (ssh,) = dry(capsys, "setup", "sbir-pod", f"--zone={ZONE}", "--project=p-1",
                 "--repo=git@github.com:me/sbirjax.git@v0.1")
    assert "--worker=all" in ssh and ssh[-1] == "--project=p-1"
    script = command_of(ssh)
    assert "git clone -q git@github.com:me/sbirjax.git \"$HOME/sbirjax\"" in script
    assert "checkout -q v0.1" in script and "tar -x" not in script


def test_setup_tarball(capsys, tmp_path):
    tarball = tmp_path / "sbirjax.tar.gz"
    tarball.write_bytes(b"")
    scp, ssh = dry(capsys, "setup", "sbir-pod", f"--zone={ZONE}", f"--tarball={tarball}",
                   "--python=python3.12", "--jax=jax[tpu]==0.10.2")
    assert scp[5:7] == [str(tarball), "sbir-pod:sbirjax-src.tar.gz"] and "--worker=all" in scp
    assert "python3.12-venv" in command_of(ssh)


@pytest.mark.parametrize("extra,needle", [
    ([], "say where the code comes from"),
    (["--local", "--repo=https://github.com/me/sbirjax"], "say where the code comes from"),
    (["--tarball=/nonexistent/sbirjax.tar.gz"], "no such file"),
    (["--tarball=sbirjax.zip"], "expected a .tar.gz"),
    (["--local", "--python=python3; rm -rf /"], "bad --python"),
    (["--local", "--", "--x"], "takes nothing after --"),
])
def test_setup_rejects_bad_arguments(capsys, extra, needle):
    assert needle in fails(capsys, "setup", "sbir-pod", f"--zone={ZONE}", *extra)


# ---------------------------------------------------------------------------------------------
# run


def run_args(script):
    """The sbirjax.main arguments of a run script (its `set -- ...` statement)."""
    (stmt,) = [s for s in script.split("; ") if s.startswith("set -- ")]
    return shlex.split(stmt)[2:]


def test_run_on_all_workers_with_overrides(capsys):
    (ssh,) = dry(capsys, "run", "sbir-pod", f"--zone={ZONE}", "--config=configs/shoev2.py",
                 "--bucket=gs://my-bucket", "--env", "XLA_FLAGS=--a --b",
                 "--", "--config.total_steps=2000", "--config.data.manual_dir=/data/two words",
                 "--config.data.train_sketches=it's")
    assert ssh[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "sbir-pod"]
    assert f"--zone={ZONE}" in ssh and "--worker=all" in ssh
    script = command_of(ssh)
    assert run_args(script) == [
        "-m", "sbirjax.main", "--config=configs/shoev2.py",
        "--workdir=gs://my-bucket/runs/shoev2", "--config.data.data_dir=gs://my-bucket/tfds",
        "--config.total_steps=2000", "--config.data.manual_dir=/data/two words",
        "--config.data.train_sketches=it's"]
    assert "nohup setsid env PYTHONUNBUFFERED=1 'XLA_FLAGS=--a --b' bash -c" in script
    assert "</dev/null &" in script and "sbirjax-logs/shoev2.log" in script


def test_run_explicit_dirs_and_config_arg(capsys):
    (ssh,) = dry(capsys, "run", "sbir-pod", f"--zone={ZONE}",
                 "--config=configs/synthetic_stylemeup.py:no_ft",
                 "--workdir=gs://my-bucket/exp/a/", "--data-dir=gs://other-bucket/tfds")
    assert run_args(command_of(ssh))[2:] == [
        "--config=configs/synthetic_stylemeup.py:no_ft", "--workdir=gs://my-bucket/exp/a",
        "--config.data.data_dir=gs://other-bucket/tfds"]
    # With --bucket, a config's variants get their own workdir.
    (ssh,) = dry(capsys, "run", "sbir-pod", f"--zone={ZONE}", "--bucket=my-bucket/sbir",
                 "--config=configs/synthetic_stylemeup.py:no_ft")
    assert "--workdir=gs://my-bucket/sbir/runs/synthetic_stylemeup-no_ft" in run_args(
        command_of(ssh))
    # A single-host slice may keep everything on the VM, if asked to; no data dir is then set.
    (ssh,) = dry(capsys, "run", "sbir-pod", f"--zone={ZONE}", "--config=configs/x.py",
                 "--workdir=runs/x", "--allow-local-workdir")
    assert run_args(command_of(ssh))[2:] == ["--config=configs/x.py", "--workdir=runs/x"]


@pytest.mark.parametrize("extra,needle", [
    (["--workdir=gs://b12/runs/x"], "missing --config"),
    (["--config=configs/x.py"], "missing --workdir"),
    (["--config=configs/x.py", "--workdir=runs/x"], "must be on GCS"),
    (["--config=configs/x.py", "--workdir=/home/me/runs/x"], "--allow-local-workdir"),
    (["--config=configs/x.py", "--workdir=gs://b12/x", "--data-dir=/data"], "--data-dir must be"),
    (["--config=configs/x.py", "--workdir=gs://B/x"], "bucket"),
    (["--config=configs/x.yaml", "--bucket=b12"], "expected a .py config"),
    (["--config=configs/x.py", "--bucket=b12", "--env=1X=2"], "bad --env"),
    (["--config=configs/x.py", "--bucket=b12", "--config.total_steps=5"], "go after --"),
    (["--config=configs/x.py", "--bucket=b12", "--", "steps=5"], "only sbirjax.main flags"),
    (["--config=configs/x.py", "--bucket=b12", "--", "--workdir=gs://b12/y"], "not after --"),
    (["--config=configs/x.py", "--bucket=b12", "--", "--config.data.data_dir=gs://b12/d"],
     "given twice"),
])
def test_run_rejects_bad_arguments(capsys, extra, needle):
    assert needle in fails(capsys, "run", "sbir-pod", f"--zone={ZONE}", *extra)


@pytest.mark.parametrize("override,needle", [
    ("--config.total_stepz=5", "total_steps"),        # a typo
    ("--config.keep_checkpoints=0", "keep_checkpoints"),  # a value the run cannot use
])
def test_run_checks_the_overrides_here_first(capsys, override, needle):
    err = fails(capsys, "run", "sbir-pod", f"--zone={ZONE}", "--config=configs/shoev2.py",
                "--bucket=b12", "--", override)
    assert "nothing was sent to the workers" in err and needle in err


# ---------------------------------------------------------------------------------------------
# logs, stop, status, delete


def test_logs_follows_worker_0(capsys):
    (ssh,) = dry(capsys, "logs", "sbir-pod", f"--zone={ZONE}")
    assert ssh[4:6] == ["ssh", "sbir-pod"] and "--worker=0" in ssh and f"--zone={ZONE}" in ssh
    assert "exec tail -n 100 -F \"$HOME/sbirjax-logs/latest.log\"" in command_of(ssh)
    (ssh,) = dry(capsys, "logs", "sbir-pod", f"--zone={ZONE}", "--worker=all", "--no-follow",
                 "--run=gs://b/runs/shoev2", "--lines=5")
    assert "--worker=all" in ssh
    assert "tail -n 5 \"$HOME/sbirjax-logs/shoev2.log\"" in command_of(ssh)
    assert "-F" not in command_of(ssh)
    assert "add --no-follow" in fails(capsys, "logs", "sbir-pod", f"--zone={ZONE}", "--worker=all")
    assert "bad --worker" in fails(capsys, "logs", "sbir-pod", f"--zone={ZONE}", "--worker=w1")


def test_stop_status_delete(capsys):
    (ssh,) = dry(capsys, "stop", "sbir-pod", f"--zone={ZONE}")
    assert "--worker=all" in ssh and "kill -TERM" in command_of(ssh)
    (cmd,) = dry(capsys, "status", "sbir-pod", f"--zone={ZONE}")
    assert cmd[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "describe", "sbir-pod"]
    (cmd,) = dry(capsys, "delete", "sbir-pod", f"--zone={ZONE}", "--project=my-proj")
    assert cmd == ["gcloud", "compute", "tpus", "tpu-vm", "delete", "sbir-pod", f"--zone={ZONE}",
                   "--quiet", "--project=my-proj"]


# ---------------------------------------------------------------------------------------------
# Without --dry-run: a fake gcloud, or none


@pytest.fixture
def fake_gcloud(tmp_path, monkeypatch):
    """A gcloud first on PATH that appends its arguments (one a line) to a file."""
    bin_dir, record = tmp_path / "bin", tmp_path / "gcloud-calls"
    bin_dir.mkdir()
    gcloud = bin_dir / "gcloud"
    gcloud.write_text(f"#!/bin/sh\nfor a in \"$@\"; do echo \"$a\"; done >>{record}\n"
                      f"echo --- >>{record}\nexit ${{FAKE_GCLOUD_RC:-0}}\n")
    gcloud.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")

    def calls():
        if not record.exists():
            return []
        return [c.strip("\n").split("\n") for c in record.read_text().split("---\n") if c.strip()]
    return calls


def test_runs_gcloud_and_echoes_commands(capsys, fake_gcloud):
    assert tpu.main(["create", "sbir-pod", f"--zone={ZONE}", "--type=v4-8"]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert "+ gcloud compute tpus tpu-vm create sbir-pod" in err
    assert fake_gcloud() == [["compute", "tpus", "tpu-vm", "create", "sbir-pod", f"--zone={ZONE}",
                              "--accelerator-type=v4-8", "--version=tpu-ubuntu2204-base"]]


def test_setup_local_packs_this_checkout(capsys, fake_gcloud):
    assert tpu.main(["setup", "sbir-pod", f"--zone={ZONE}", "--local"]) == 0
    (scp, ssh) = fake_gcloud()
    assert scp[3] == "scp" and scp[4].endswith("sbirjax-src.tar.gz") and ssh[3] == "ssh"
    assert not os.path.exists(scp[4])  # the temporary tarball is gone


def test_gcloud_failure_is_reported_with_its_status(capsys, fake_gcloud, monkeypatch):
    monkeypatch.setenv("FAKE_GCLOUD_RC", "3")
    assert tpu.main(["status", "sbir-pod", f"--zone={ZONE}"]) == 3
    err = capsys.readouterr().err
    assert "gcloud exited with status 3" in err and "Traceback" not in err


class _Tty:
    def isatty(self):
        return True


def test_delete_asks_first(capsys, fake_gcloud, monkeypatch):
    argv = ["delete", "sbir-pod", f"--zone={ZONE}"]
    err = fails(capsys, *argv, dry_run=False)  # stdin is not a terminal here
    assert "pass --yes" in err and fake_gcloud() == []
    monkeypatch.setattr(sys, "stdin", _Tty())
    monkeypatch.setattr(tpu, "ask", lambda prompt: "n")
    assert tpu.main(argv) == 1 and fake_gcloud() == []
    monkeypatch.setattr(tpu, "ask", lambda prompt: "y")
    assert tpu.main(argv) == 0 and fake_gcloud()[-1][3] == "delete"
    monkeypatch.setattr(tpu, "ask", lambda prompt: pytest.fail("asked despite --yes"))
    assert tpu.main(argv + ["--yes"]) == 0 and len(fake_gcloud()) == 2


@pytest.mark.parametrize("argv", [
    ["create", "sbir-pod", f"--zone={ZONE}", "--type=v4-8"],
    ["setup", "sbir-pod", f"--zone={ZONE}", "--local"],
    ["run", "sbir-pod", f"--zone={ZONE}", "--config=configs/x.py", "--bucket=b12"],
    ["logs", "sbir-pod", f"--zone={ZONE}"],
    ["delete", "sbir-pod", f"--zone={ZONE}"],
])
def test_without_gcloud_a_clear_message(capsys, monkeypatch, tmp_path, argv):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder
    assert tpu.main(argv) == 1
    out, err = capsys.readouterr()
    assert out == "" and "gcloud not found" in err and "Traceback" not in err


def test_as_a_script_without_gcloud(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path))
    r = subprocess.run([sys.executable, SCRIPT, "create", "sbir-pod", f"--zone={ZONE}",
                        "--type=v5litepod-8"], env=env, capture_output=True, text=True)
    assert r.returncode == 1 and "gcloud not found" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, SCRIPT, "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "create" in r.stdout and "delete" in r.stdout


# ---------------------------------------------------------------------------------------------
# The worker scripts, run by bash in a fake home directory

FAKE_PYTHON = """#!/bin/bash
printf '%s\\n' "$@" >"$HOME/python-args"
if [ "$2" = sbirjax.main ]; then
  echo "step 1"
  trap 'echo "got SIGTERM"; exit 143' TERM
  sleep 30 & wait
fi
"""


def _kill_group(pid):
    try:
        os.killpg(pid, 9)
    except OSError:  # already gone
        pass


def on_worker(capsys, home, *argv):
    (*_, ssh) = dry(capsys, *argv)
    return subprocess.run(["bash", "-c", command_of(ssh)], env=dict(os.environ, HOME=str(home)),
                          capture_output=True, text=True, timeout=20)


@pytest.mark.skipif(shutil.which("bash") is None or not os.path.isdir("/proc/self"),
                    reason="needs bash and /proc")
def test_worker_scripts(capsys, tmp_path, request):
    home = tmp_path / "home"
    (home / "sbirjax-venv" / "bin").mkdir(parents=True)
    python = home / "sbirjax-venv" / "bin" / "python"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)

    # setup from a tarball whose files sit under one folder (as `git archive --prefix=` makes);
    # the tarball is put where the scp step would.
    src = tmp_path / "src" / "sbirjax-main"
    (src / "sbirjax").mkdir(parents=True)
    (src / "pyproject.toml").write_text("")
    with tarfile.open(home / "sbirjax-src.tar.gz", "w:gz") as tar:
        tar.add(src, arcname="sbirjax-main")
    local = tmp_path / "local.tar.gz"
    local.write_bytes(b"")
    r = on_worker(capsys, home, "setup", "sbir-pod", f"--zone={ZONE}", f"--tarball={local}")
    assert r.returncode == 0, r.stderr
    assert (home / "sbirjax" / "pyproject.toml").exists()
    assert not (home / "sbirjax-src.tar.gz").exists() and not (home / "sbirjax.unpack").exists()

    # run: detached, its own session, the arguments intact, a log and a pid file.
    run = ["run", "sbir-pod", f"--zone={ZONE}", "--config=configs/x.py", "--bucket=b12",
           "--", "--config.note=two words, 'quoted'"]
    r = on_worker(capsys, home, *run)
    assert r.returncode == 0, r.stderr
    pid = int((home / "sbirjax-logs" / "run.pid").read_text())
    request.addfinalizer(lambda: _kill_group(pid))
    assert f"started pid {pid}" in r.stdout
    args = home / "python-args"
    log = home / "sbirjax-logs" / "latest.log"
    deadline = time.time() + 10
    while not (args.exists() and "step 1" in log.read_text()) and time.time() < deadline:
        time.sleep(0.02)
    assert args.read_text().splitlines() == [
        "-m", "sbirjax.main", "--config=configs/x.py", "--workdir=gs://b12/runs/x",
        "--config.data.data_dir=gs://b12/tfds", "--config.note=two words, 'quoted'"]
    assert os.path.realpath(log) == str(home / "sbirjax-logs" / "x.log")
    assert os.getsid(pid) == pid  # a session of its own: an ssh hang-up does not reach it

    # A second run, or a setup, while one is going is refused.
    r = on_worker(capsys, home, *run)
    assert r.returncode == 1 and "a run is already going on" in r.stderr and str(pid) in r.stderr
    r = on_worker(capsys, home, "setup", "sbir-pod", f"--zone={ZONE}", f"--tarball={local}")
    assert r.returncode == 1 and "stop it first" in r.stderr

    r = on_worker(capsys, home, "logs", "sbir-pod", f"--zone={ZONE}", "--no-follow",
                  "--worker=all")
    assert r.returncode == 0 and ": step 1" in r.stdout

    r = on_worker(capsys, home, "stop", "sbir-pod", f"--zone={ZONE}")
    assert r.returncode == 0 and f"sent SIGTERM to the run (pid {pid})" in r.stdout
    deadline = time.time() + 10
    while "exit status" not in log.read_text() and time.time() < deadline:
        time.sleep(0.02)
    assert "got SIGTERM" in log.read_text() and "exit status 143" in log.read_text()
    deadline = time.time() + 10
    while "no run going" not in on_worker(capsys, home, "stop", "sbir-pod",
                                          f"--zone={ZONE}").stdout:
        assert time.time() < deadline
        time.sleep(0.05)

    r = on_worker(capsys, home, "logs", "sbir-pod", f"--zone={ZONE}", "--no-follow",
                  "--run=nothing-here")
    assert r.returncode == 1 and "no log" in r.stderr
