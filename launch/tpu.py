#!/usr/bin/env python3
"""Run sbirjax on a Cloud TPU VM slice: create, set up, run, follow, stop and delete it.

  python launch/tpu.py create NAME --zone=ZONE --type=v5litepod-16 [--spot | --preemptible]
  python launch/tpu.py setup  NAME --zone=ZONE (--local | --tarball FILE.tar.gz | --repo URL[@REF])
  python launch/tpu.py run    NAME --zone=ZONE --config=configs/X.py --bucket=gs://BUCKET \
                              [-- --config.total_steps=2000 ...]
  python launch/tpu.py logs   NAME --zone=ZONE           # follow worker 0's log
  python launch/tpu.py stop   NAME --zone=ZONE           # SIGTERM to the run on every worker
  python launch/tpu.py status NAME --zone=ZONE           # state of the slice (READY, PREEMPTED...)
  python launch/tpu.py delete NAME --zone=ZONE [--yes]

Every subcommand takes --project and --dry-run. With --dry-run the gcloud commands are printed,
one a line, prefixed by '+ ' and shell-quoted, and nothing is run. Otherwise each command is
echoed the same way on stderr before it runs. Only the Python standard library is used, so this
runs from any checkout without installing sbirjax.

On the workers, the code lives in ~/sbirjax, the virtual environment in ~/sbirjax-venv and the
run logs in ~/sbirjax-logs (<run>.log, latest.log pointing at the newest, run.pid).
Exit codes: 0 done; 2 bad arguments (a message says what is wrong; nothing was run); a failed
gcloud command's own status; 1 gcloud missing or a deletion not confirmed.
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile

JAX_TPU = "jax[tpu]==0.10.2"  # sbirjax pins jax 0.10.2 (pyproject.toml)
# The [gcs] extra of pyproject.toml: gs:// for TFDS and etils (gcsfs) and tensorboardX
# (google-cloud-storage).
EXTRA_PACKAGES = ["gcsfs==2026.10.1", "google-cloud-storage==3.17.1"]
PYTHON = "python3.11"  # sbirjax needs Python >= 3.11; the TPU VM images ship 3.10

# Default TPU VM software version per accelerator family (the images Google lists for JAX).
RUNTIME_VERSIONS = {
    "v2": "tpu-ubuntu2204-base",
    "v3": "tpu-ubuntu2204-base",
    "v4": "tpu-ubuntu2204-base",
    "v5litepod": "v2-alpha-tpuv5-lite",  # v5e
    "v5p": "v2-alpha-tpuv5",
    "v6e": "v2-alpha-tpuv6e",  # Trillium
}

# Paths on the workers. $HOME is expanded by the worker's shell, so these go in double quotes.
SRC = "$HOME/sbirjax"
VENV = "$HOME/sbirjax-venv"
LOGS = "$HOME/sbirjax-logs"
PIDFILE = LOGS + "/run.pid"
TARBALL = "sbirjax-src.tar.gz"  # scp destination, relative to the home directory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SELF = "python launch/tpu.py"

_NAME_RE = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_ZONE_RE = re.compile(r"^[a-z]+-[a-z]+[0-9]+-[a-z]$")
_TYPE_RE = re.compile(r"^([a-z][a-z0-9]*)-([0-9]+)$")
_GCS_RE = re.compile(r"^gs://[a-z0-9][-_.a-z0-9]{1,61}[a-z0-9](/.*)?$")
_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


class UsageError(Exception):
    """Bad arguments: exit 2 with the message."""


class Failure(Exception):
    """A command failed or could not run: exit with `code` and the message."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def note(message: str) -> None:
    print(message, file=sys.stderr)


def q(word: str) -> str:
    """A worker path in double quotes, so that $HOME still expands."""
    return '"' + word + '"'


# Sets P to the pid of this worker's run while one is going (the pid file alone can be stale).
RUNNING = (f"P=$(cat {q(PIDFILE)} 2>/dev/null || true); "
           "grep -qs sbirjax.main \"/proc/${P:-none}/cmdline\" || P=")

def script(*lines: str) -> str:
    """Shell statements for a worker as one line (so a dry run prints one command a line)."""
    return "; ".join(lines)


# --------------------------------------------------------------------------------------------
# Validation


def check_name(name: str | None, command: str) -> str:
    if not name:
        raise UsageError(f"missing the slice NAME: {SELF} {command} NAME --zone=ZONE ...")
    if not _NAME_RE.match(name):
        raise UsageError(
            f"bad slice name {name!r}: use lowercase letters, digits and hyphens, starting with a "
            "letter and not ending with a hyphen (at most 63 characters)")
    return name


def check_zone(zone: str | None) -> str:
    if not zone:
        raise UsageError("missing --zone (a zone with TPU capacity for your type, e.g. "
                         "--zone=us-west4-a for v5litepod, --zone=us-central2-b for v4)")
    if not _ZONE_RE.match(zone):
        raise UsageError(f"bad --zone {zone!r}: expected a zone such as us-west4-a "
                         "(a region such as us-west4 is not enough)")
    return zone


def runtime_version(accelerator_type: str | None, version: str | None) -> str:
    """Validates the accelerator type and picks the software version (a --version wins)."""
    if not accelerator_type:
        raise UsageError("missing --type, the accelerator type (e.g. --type=v5litepod-16, "
                         "--type=v4-32, --type=v6e-8)")
    m = _TYPE_RE.match(accelerator_type)
    if not m:
        raise UsageError(f"bad --type {accelerator_type!r}: expected FAMILY-SIZE, e.g. "
                         "v5litepod-16, v4-32, v5p-8, v6e-8")
    family = m.group(1)
    if family == "v5e":
        raise UsageError(f"--type {accelerator_type!r}: Cloud TPU names v5e slices "
                         f"v5litepod-N (--type=v5litepod-{m.group(2)})")
    if version:
        return version
    if family not in RUNTIME_VERSIONS:
        raise UsageError(
            f"no default software version for TPU family {family!r} (known: "
            f"{', '.join(RUNTIME_VERSIONS)}); pass one with --version")
    return RUNTIME_VERSIONS[family]


def split_repo(spec: str) -> tuple[str, str | None]:
    """'URL[@REF]' -> (URL, REF or None). The '@' of 'git@host:...' is not taken for a ref."""
    if "@" in spec:
        url, ref = spec.rsplit("@", 1)
        # A ref follows a repository path: the text before the '@' must have a path in it
        # (after any 'scheme://'); 'git@host:o/r' and 'https://user@host/o/r' have none there.
        before = url.split("://", 1)[-1]
        if ref and ":" not in ref and ("/" in before or ":" in before):
            return url, ref
    return spec, None


def check_gcs(flag: str, value: str, allow_local: bool) -> str:
    if value.startswith("gs://"):
        if not _GCS_RE.match(value):
            raise UsageError(f"bad {flag} {value!r}: expected gs://BUCKET/PATH, with a bucket "
                             "name of 3 to 63 lowercase letters, digits, '-', '_' and '.'")
        return value.rstrip("/")
    if allow_local:
        return value
    raise UsageError(
        f"{flag} must be on GCS (gs://BUCKET/...), got {value!r}: the workers of a multi-host "
        "slice share nothing but GCS, and a VM's disk is gone after preemption or deletion. "
        "On a single-host slice, --allow-local-workdir accepts a path on the VM's disk.")


# --------------------------------------------------------------------------------------------
# gcloud


class Gcloud:
    """Runs (or, in a dry run, prints) gcloud commands with the common flags appended."""

    def __init__(self, dry_run: bool, project: str | None):
        self.dry_run = dry_run
        self.project = project

    def require(self) -> None:
        """Fails clearly when gcloud is missing (a dry run does not need it)."""
        if not self.dry_run and shutil.which("gcloud") is None:
            raise Failure(
                "gcloud not found on PATH. Install the Google Cloud CLI "
                "(https://cloud.google.com/sdk/docs/install), sign in with `gcloud auth login`, "
                "then try again; --dry-run prints the commands without gcloud.")

    def __call__(self, *args: str, check: bool = True) -> int:
        self.require()
        argv = ["gcloud", *args]
        if self.project:
            argv.append(f"--project={self.project}")
        line = "+ " + shlex.join(argv)
        if self.dry_run:
            print(line, flush=True)
            return 0
        note(line)
        try:
            rc = subprocess.call(argv)
        except FileNotFoundError:  # removed between the check and now
            raise Failure("gcloud not found on PATH (see --help)") from None
        if rc and check:
            raise Failure(f"gcloud exited with status {rc}", code=rc if 0 < rc < 126 else 1)
        return rc

    def ssh(self, name: str, zone: str, worker: str, command: str, check: bool = True) -> int:
        return self("compute", "tpus", "tpu-vm", "ssh", name, f"--zone={zone}",
                    f"--worker={worker}", f"--command={command}", check=check)


# --------------------------------------------------------------------------------------------
# Subcommands


def cmd_create(a, gcloud: Gcloud, extra: list[str]) -> int:
    version = runtime_version(a.type, a.version)
    args = ["compute", "tpus", "tpu-vm", "create", a.name, f"--zone={a.zone}",
            f"--accelerator-type={a.type}", f"--version={version}"]
    if a.spot:
        args.append("--spot")
    if a.preemptible:
        args.append("--preemptible")
    gcloud(*args, *extra)
    note(f"next: {SELF} setup {a.name} --zone={a.zone} --local")
    return 0


def local_files(root: str) -> list[str]:
    """The checkout's files: tracked ones and untracked ones git does not ignore."""
    try:
        out = subprocess.run(
            ["git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            check=True, capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError):
        raise UsageError(f"--local packs a git checkout, and {root} is not one (or git is "
                         "missing); pass --tarball FILE.tar.gz or --repo URL[@REF]") from None
    files = sorted({f for f in out.decode().split("\0") if f})
    return [f for f in files if os.path.isfile(os.path.join(root, f))]  # not deleted ones


def pack(root: str, files: list[str], path: str) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for f in files:
            tar.add(os.path.join(root, f), arcname=f, recursive=False)


def setup_script(a, repo: tuple[str, str | None] | None) -> str:
    busy = (f"{RUNNING}; if [ -n \"$P\" ]; then "
            f"echo \"error: a run is going on $(hostname); stop it first: {SELF} stop "
            f"{a.name} --zone={a.zone}\" >&2; exit 1; fi")
    lines = ["set -eu", busy, f"rm -rf {q(SRC)}"]
    if repo is not None:
        url, ref = repo
        lines.append(f"git clone -q {shlex.quote(url)} {q(SRC)}")
        if ref:
            lines.append(f"git -C {q(SRC)} checkout -q {shlex.quote(ref)}")
    else:
        # Files at the top of the tarball, or under one folder (git archive --prefix=...).
        tmp = SRC + ".unpack"
        lines += [
            f"rm -rf {q(tmp)}", f"mkdir -p {q(tmp)}",
            f"tar -xzf {q('$HOME/' + TARBALL)} -C {q(tmp)}",
            f"if [ -f {q(tmp + '/pyproject.toml')} ]; then mv {q(tmp)} {q(SRC)}; else "
            f"set -- {q(tmp)}/*/pyproject.toml; if [ $# -ne 1 ] || [ ! -f \"$1\" ]; then "
            "echo \"error: no pyproject.toml at the top of the tarball or in its one folder\" >&2;"
            f" exit 1; fi; mv \"$(dirname \"$1\")\" {q(SRC)}; rm -rf {q(tmp)}; fi",
            f"rm -f {q('$HOME/' + TARBALL)}",
        ]
    py = a.python
    if re.match(r"^python3\.[0-9]+$", py):
        apt = ("sudo DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600 "
               f"update && sudo DEBIAN_FRONTEND=noninteractive apt-get -q -y "
               f"-o DPkg::Lock::Timeout=600 install {py} {py}-venv")
    else:
        apt = f"echo \"error: {py} cannot make a virtual environment on $(hostname)\" >&2; exit 1"
    lines += [
        # The images ship an older Python: install ours (with venv) the first time only.
        f"if [ ! -x {q(VENV + '/bin/python')} ]; then {shlex.quote(py)} -m venv {q(VENV)} "
        f">/dev/null 2>&1 || {{ {apt}; rm -rf {q(VENV)}; {shlex.quote(py)} -m venv {q(VENV)}; "
        "}; fi",
        f"{q(VENV + '/bin/python')} -m pip install -q --upgrade pip",
        f"{q(VENV + '/bin/python')} -m pip install -q -e {q(SRC)} "
        f"{shlex.join([a.jax, *EXTRA_PACKAGES])}",
        f"cd {q(SRC)}",
        f"{q(VENV + '/bin/python')} -c " + shlex.quote(
            'import jax, sbirjax, socket; print(socket.gethostname() + ": sbirjax ready, jax", '
            'jax.__version__)'),
    ]
    return script(*lines)


def cmd_setup(a, gcloud: Gcloud, extra: list[str]) -> int:
    sources = [s for s in (a.local, a.tarball, a.repo) if s]
    if len(sources) != 1:
        raise UsageError("say where the code comes from, once: --local (pack this checkout), "
                         "--tarball FILE.tar.gz or --repo URL[@REF]")
    if not re.match(r"^[^\s'\"$`\\]+$", a.python):
        raise UsageError(f"bad --python {a.python!r}")
    repo = split_repo(a.repo) if a.repo else None
    tarball = a.tarball
    if tarball is not None:
        if not tarball.endswith((".tar.gz", ".tgz")):
            raise UsageError(f"--tarball {tarball!r}: expected a .tar.gz or .tgz file")
        if not os.path.isfile(tarball):
            raise UsageError(f"--tarball {tarball!r}: no such file")
    gcloud.require()  # before packing
    tmpdir = None
    try:
        if a.local:
            files = local_files(ROOT)
            if "pyproject.toml" not in files:
                raise UsageError(f"{ROOT} has no pyproject.toml: not an sbirjax checkout")
            if gcloud.dry_run:
                tarball = os.path.join(tempfile.gettempdir(), "sbirjax-XXXXXX", TARBALL)
                note(f"# would pack {len(files)} files of {ROOT} into {tarball}")
            else:
                tmpdir = tempfile.mkdtemp(prefix="sbirjax-")
                tarball = os.path.join(tmpdir, TARBALL)
                pack(ROOT, files, tarball)
                note(f"packed {len(files)} files of {ROOT} "
                     f"({os.path.getsize(tarball) / 2**20:.1f} MiB)")
        if not a.repo:
            gcloud("compute", "tpus", "tpu-vm", "scp", tarball, f"{a.name}:{TARBALL}",
                   f"--zone={a.zone}", "--worker=all")
        gcloud.ssh(a.name, a.zone, "all", setup_script(a, repo))
    finally:
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
    note(f"next: {SELF} run {a.name} --zone={a.zone} --config=configs/X.py --bucket=gs://BUCKET")
    return 0


def run_name(workdir: str) -> str:
    base = os.path.basename(workdir.rstrip("/")) or "run"
    return re.sub(r"[^A-Za-z0-9._-]", "_", base)


def check_config_locally(config: str, extra: list[str]) -> None:
    """Load the config with the overrides given after -- here, before anything reaches the
    workers: a typo or a bad value stops the launch with sbirjax's own message. Skipped (with a
    note) when the config is not in this checkout or sbirjax does not import here."""
    path = config.split(":", 1)[0]
    if not os.path.isfile(path if os.path.isabs(path) else os.path.join(ROOT, path)):
        return
    overrides = [x for x in extra if x.startswith("--config.")]
    try:
        done = subprocess.run([sys.executable, "-m", "sbirjax.main", f"--config={config}",
                               *overrides, "--check_only"], cwd=ROOT, capture_output=True,
                              text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        note(f"note: the config was not checked here ({e}); the workers will check it")
        return
    if done.returncode == 2:
        raise UsageError("the config or its overrides cannot run (checked here, nothing was "
                         "sent to the workers):\n" + done.stderr.strip())
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        note(f"note: the config was not checked here ({last}); the workers will check it")


def cmd_run(a, gcloud: Gcloud, extra: list[str]) -> int:
    if not a.config:
        raise UsageError("missing --config, the config file in the repository "
                         "(e.g. --config=configs/shoev2.py)")
    config_path = a.config.split(":", 1)[0]
    if not config_path.endswith(".py"):
        raise UsageError(f"--config {a.config!r}: expected a .py config file[:arg]")
    if not os.path.isabs(config_path) and not os.path.isfile(os.path.join(ROOT, config_path)):
        note(f"note: {config_path} is not in this checkout; it must be in the copy on the workers")
    base = None
    if a.bucket:  # gs://BUCKET[/PREFIX]; the gs:// may be left out
        base = check_gcs("--bucket", a.bucket if a.bucket.startswith("gs://")
                         else "gs://" + a.bucket, False)
    workdir = a.workdir
    if workdir is None and base:
        # runs/<config name>[-<arg>]: a config's variants (file.py:arg) must not share a workdir,
        # or one would resume from the other's checkpoints.
        stem = os.path.splitext(os.path.basename(config_path))[0]
        if ":" in a.config and a.config.split(":", 1)[1]:
            stem += "-" + re.sub(r"[^A-Za-z0-9._-]", "_", a.config.split(":", 1)[1])
        workdir = f"{base}/runs/{stem}"
    if not workdir:
        raise UsageError("missing --workdir (e.g. --workdir=gs://BUCKET/runs/NAME), or --bucket "
                         "for gs://BUCKET/runs/<config name> and data in gs://BUCKET/tfds")
    workdir = check_gcs("--workdir", workdir, a.allow_local_workdir)
    data_dir = a.data_dir
    if data_dir is None and base:
        data_dir = f"{base}/tfds"
    if data_dir:
        data_dir = check_gcs("--data-dir", data_dir, a.allow_local_workdir)

    for e in a.env:
        if not _ENV_RE.match(e):
            raise UsageError(f"bad --env {e!r}: expected NAME=VALUE")
    for x in extra:
        if not x.startswith("--"):
            raise UsageError(f"after --, only sbirjax.main flags (--config.KEY=VALUE, "
                             f"--verbosity=...) are passed on; got {x!r}")
        flag = x.split("=", 1)[0]
        if flag in ("--config", "--workdir"):
            raise UsageError(f"{flag} belongs to tpu.py run itself ({flag}=...), not after --")
        if flag == "--config.data.data_dir" and data_dir:
            raise UsageError("the data dir is given twice: by --data-dir/--bucket and by "
                             "--config.data.data_dir after --; keep one")

    argv = ["-m", "sbirjax.main", f"--config={a.config}", f"--workdir={workdir}"]
    if data_dir:
        argv.append(f"--config.data.data_dir={data_dir}")
    argv += extra
    check_config_locally(a.config, extra)
    env = ["PYTHONUNBUFFERED=1", *a.env]
    name = run_name(workdir)
    log = f"{LOGS}/{name}.log"
    # A shell around the run notes its exit status in the log (143: stopped by SIGTERM after a
    # checkpoint); it waits out a SIGTERM sent to the run's process group.
    wrapper = ('trap : TERM; "$0" "$@"; rc=$?; '
               'echo "=== $(date -u +%Y-%m-%dT%H:%M:%SZ) exit status $rc"; exit $rc')
    command = (f"nohup setsid env {shlex.join(env)} bash -c {shlex.quote(wrapper)} "
               f"{q(VENV + '/bin/python')} \"$@\" >>{q(log)} 2>&1 </dev/null & "
               f"echo $! >{q(PIDFILE)}")
    remote = script(
        "set -eu",
        f"if [ ! -x {q(VENV + '/bin/python')} ]; then echo \"error: $(hostname) is not set up: "
        f"{SELF} setup {a.name} --zone={a.zone} ...\" >&2; exit 1; fi",
        f"mkdir -p {q(LOGS)}",
        f"{RUNNING}; if [ -n \"$P\" ]; then "
        f"echo \"error: a run is already going on $(hostname) (pid $P); "
        f"stop it first: {SELF} stop {a.name} --zone={a.zone}\" >&2; exit 1; fi",
        f"cd {q(SRC)}",
        f"ln -sfn {q(log)} {q(LOGS + '/latest.log')}",
        f"set -- {shlex.join(argv)}",  # the run's arguments, written out once
        f"echo \"=== $(date -u +%Y-%m-%dT%H:%M:%SZ) $(hostname): python $*\" >>{q(log)}",
        # Detached from the ssh session: an ssh drop does not stop training.
        command,
        f"echo \"$(hostname): started pid $!, log {log}\"",
    )
    gcloud.ssh(a.name, a.zone, "all", remote)
    note(f"workdir {workdir}; follow it: {SELF} logs {a.name} --zone={a.zone}")
    return 0


def cmd_logs(a, gcloud: Gcloud, extra: list[str]) -> int:
    worker = a.worker
    if worker != "all" and not worker.isdigit():
        raise UsageError(f"bad --worker {worker!r}: a worker number (0, 1, ...) or 'all'")
    if worker == "all" and not a.no_follow:
        raise UsageError("--worker=all shows the last lines of every worker: add --no-follow")
    if a.lines < 0:
        raise UsageError("--lines must be >= 0")
    log = f"{LOGS}/{run_name(a.run)}.log" if a.run else f"{LOGS}/latest.log"
    tail = f"tail -n {a.lines} {q(log)}" if a.no_follow else f"exec tail -n {a.lines} -F {q(log)}"
    if worker == "all":
        tail += " | sed \"s/^/$(hostname): /\""
    remote = script(
        f"if [ ! -e {q(log)} ]; then echo \"$(hostname): no log {log} (no run started here)\" "
        ">&2; exit 1; fi",
        tail)
    try:
        rc = gcloud.ssh(a.name, a.zone, worker, remote, check=False)
    except KeyboardInterrupt:  # Ctrl-C ends following; the run goes on
        return 0
    return 1 if rc else 0


def cmd_stop(a, gcloud: Gcloud, extra: list[str]) -> int:
    remote = script(
        f"{RUNNING}; if [ -n \"$P\" ]; then "
        f"kill -TERM -- \"-$P\"; "
        f"echo \"$(hostname): sent SIGTERM to the run (pid $P)\"; "
        "else echo \"$(hostname): no run going\"; fi")
    gcloud.ssh(a.name, a.zone, "all", remote)
    return 0


def cmd_status(a, gcloud: Gcloud, extra: list[str]) -> int:
    gcloud("compute", "tpus", "tpu-vm", "describe", a.name, f"--zone={a.zone}",
           "--format=table(name.basename(), acceleratorType.basename(), state, health, "
           "runtimeVersion, schedulingConfig.spot, schedulingConfig.preemptible)")
    return 0


def ask(prompt: str) -> str:
    return input(prompt)


def cmd_delete(a, gcloud: Gcloud, extra: list[str]) -> int:
    gcloud.require()  # before asking
    if not a.yes and not gcloud.dry_run:
        where = f"{a.zone}" + (f", project {a.project}" if a.project else "")
        if not sys.stdin or not sys.stdin.isatty():
            raise UsageError(f"refusing to delete {a.name} without a confirmation (stdin is not "
                             "a terminal): pass --yes")
        answer = ask(f"Delete TPU slice {a.name} ({where})? Everything on its VMs goes (code, "
                     "venv, local logs); the workdir on GCS stays. [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            note("not deleted")
            return 1
    gcloud("compute", "tpus", "tpu-vm", "delete", a.name, f"--zone={a.zone}", "--quiet")
    return 0


COMMANDS = {
    "create": (cmd_create, "create a TPU VM slice"),
    "setup": (cmd_setup, "copy the code to every worker and install it in a virtual environment"),
    "run": (cmd_run, "start a config on every worker, detached, logging to a file"),
    "logs": (cmd_logs, "follow a worker's log (worker 0 by default)"),
    "stop": (cmd_stop, "send SIGTERM to the run on every worker"),
    "status": (cmd_status, "show the slice's state (READY, PREEMPTED, ...)"),
    "delete": (cmd_delete, "delete the slice (asks first unless --yes)"),
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=SELF, description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="`" + SELF + " COMMAND --help` shows a command's options; launch/README.md has "
               "the whole recipe.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_) in COMMANDS.items():
        s = sub.add_parser(name, help=help_, description=help_, allow_abbrev=False)
        s.add_argument("name", nargs="?", metavar="NAME", help="the slice (TPU VM) name")
        s.add_argument("--zone", help="its zone, e.g. us-west4-a")
        s.add_argument("--project", help="Google Cloud project (default: gcloud's configured one)")
        s.add_argument("--dry-run", action="store_true",
                       help="print the gcloud commands ('+ ' a line) instead of running them")
        if name == "create":
            s.add_argument("--type", "--accelerator-type", dest="type",
                           help="accelerator type, e.g. v5litepod-16, v4-32, v5p-8, v6e-8")
            s.add_argument("--version", "--runtime-version", dest="version",
                           help="TPU VM software version (default by family: "
                           + ", ".join(f"{k}: {v}" for k, v in RUNTIME_VERSIONS.items()) + ")")
            g = s.add_mutually_exclusive_group()
            g.add_argument("--spot", action="store_true", help="a Spot VM (preemptible, cheaper)")
            g.add_argument("--preemptible", action="store_true",
                           help="a preemptible VM (older kind: at most 24 h)")
            s.epilog = "Flags after -- go to `gcloud compute tpus tpu-vm create` unchanged."
        elif name == "setup":
            s.add_argument("--local", action="store_true",
                           help="pack this checkout (tracked and non-ignored untracked files, "
                           "uncommitted edits included) and scp it to every worker")
            s.add_argument("--tarball", metavar="FILE.tar.gz",
                           help="scp this tarball of the repository to every worker")
            s.add_argument("--repo", metavar="URL[@REF]",
                           help="git clone URL on every worker, then check out REF")
            s.add_argument("--python", default=PYTHON,
                           help=f"Python for the virtual environment (default {PYTHON}, "
                           "installed with apt when missing)")
            s.add_argument("--jax", default=JAX_TPU, help=f"jax requirement (default {JAX_TPU!r})")
        elif name == "run":
            s.add_argument("--config", help="config file in the repository, FILE.py[:ARG]")
            s.add_argument("--bucket", help="gs://BUCKET[/PREFIX]: workdir BUCKET/runs/<config "
                           "name>[-<arg>] and data dir BUCKET/tfds unless given")
            s.add_argument("--workdir", help="run directory, gs://BUCKET/PATH; running again "
                           "with the same workdir resumes from its last checkpoint")
            s.add_argument("--data-dir", help="TFDS data dir, gs://BUCKET/PATH "
                           "(--config.data.data_dir)")
            s.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                           help="environment variable for the run (repeatable)")
            s.add_argument("--allow-local-workdir", action="store_true",
                           help="accept workdir and data dir on the VM's own disk "
                           "(single-host slices only)")
            s.epilog = ("Flags after -- go to sbirjax.main unchanged, e.g. "
                        "-- --config.total_steps=2000 --config.optim.lr=1e-4")
        elif name == "logs":
            s.add_argument("--worker", default="0", help="worker number, or 'all' with --no-follow")
            s.add_argument("--run", help="the run's name (its workdir's last part); "
                           "default: the latest run started")
            s.add_argument("--lines", type=int, default=100, help="lines of history (default 100)")
            s.add_argument("--no-follow", action="store_true", help="print and return")
        elif name == "delete":
            s.add_argument("--yes", "-y", action="store_true", help="do not ask")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    p = parser()
    a, unknown = p.parse_known_args(argv)
    try:
        if a.command is None:
            raise UsageError(f"missing the COMMAND ({', '.join(COMMANDS)}); see {SELF} --help")
        if unknown:
            hint = ""
            if a.command == "run" and any(u.startswith("--config.") for u in unknown):
                hint = " (sbirjax.main flags go after --: ... -- --config.KEY=VALUE)"
            raise UsageError(f"unrecognized arguments: {' '.join(unknown)}{hint}")
        if extra and a.command not in ("create", "run"):
            raise UsageError(f"{a.command} takes nothing after --")
        if a.command == "create":
            for x in extra:
                if not x.startswith("--"):
                    raise UsageError(f"after --, only gcloud flags are passed on; got {x!r}")
        a.name = check_name(a.name, a.command)
        a.zone = check_zone(a.zone)
        gcloud = Gcloud(a.dry_run, a.project)
        return COMMANDS[a.command][0](a, gcloud, extra)
    except UsageError as e:
        print(f"{' '.join([SELF] + ([a.command] if a.command else []))}: error: {e}",
              file=sys.stderr)
        return 2
    except Failure as e:
        print(f"error: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
