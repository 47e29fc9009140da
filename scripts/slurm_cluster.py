"""A real single-node SLURM cluster in a temp dir, for tests: munged, slurmctld and slurmd as root, no systemd.

``with slurm_cluster() as env:`` installs ``slurm-wlm`` and ``munge`` with apt where they are missing, writes a
munge key and a ``slurm.conf`` (this host as the one node, ``proctrack/linuxproc``, ``task/none``, no accounting)
into a temp dir, starts the three daemons with pid files there, waits until ``sinfo`` shows the node idle, and
yields the environment the SLURM commands need (``SLURM_CONF``).  On the way out it always stops the daemons by
their pids and removes the temp dir.  Needs root on Debian (or Ubuntu); used by ``nox -s slurm``.

Run alone (``python scripts/slurm_cluster.py``) it starts the cluster, prints ``sinfo`` and stops it again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

PARTITION = "debug"
PACKAGES = ("slurm-wlm", "munge")
START_TIMEOUT_S = 60.0


def say(msg: str) -> None:
    print(f"[slurm-cluster] {msg}", file=sys.stderr, flush=True)


def can_run() -> str | None:
    """None where a cluster can be started here; otherwise the reason it cannot."""
    if not sys.platform.startswith("linux") or not Path("/etc/debian_version").exists():
        return "not Debian (the cluster comes from apt's slurm-wlm)"
    if os.geteuid() != 0:
        return "not root (apt install and the SLURM daemons need root)"
    return None


def install() -> None:
    """``apt-get install slurm-wlm munge`` unless their daemons are already on this machine."""
    if all(shutil.which(tool) for tool in ("slurmctld", "slurmd", "munged", "sinfo")):
        return
    say(f"installing {' '.join(PACKAGES)} with apt")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES], check=True, env=env)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024 * 9 // 10  # slurmd refuses a node claiming more than it has
    return 1024


def write_config(root: Path) -> Path:
    """``slurm.conf`` for one node (this host) and one partition, everything under ``root``."""
    host = socket.gethostname().split(".")[0]
    for sub in ("state", "spool"):
        (root / sub).mkdir()
    conf = root / "slurm.conf"
    conf.write_text(
        "\n".join(
            [
                "ClusterName=vmibench-ci",
                f"SlurmctldHost={host}(127.0.0.1)",
                "SlurmUser=root",
                "SlurmdUser=root",
                "AuthType=auth/munge",
                "CredType=cred/munge",
                f"AuthInfo=socket={root / 'munge.socket'}",
                f"SlurmctldPort={_free_port()}",
                f"SlurmdPort={_free_port()}",
                f"StateSaveLocation={root / 'state'}",
                f"SlurmdSpoolDir={root / 'spool'}",
                f"SlurmctldPidFile={root / 'slurmctld.pid'}",
                f"SlurmdPidFile={root / 'slurmd.pid'}",
                f"SlurmctldLogFile={root / 'slurmctld.log'}",
                f"SlurmdLogFile={root / 'slurmd.log'}",
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "SwitchType=switch/none",
                "MpiDefault=none",
                "SchedulerType=sched/backfill",
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_Core",
                "ReturnToService=2",
                "JobAcctGatherType=jobacct_gather/none",
                "AccountingStorageType=accounting_storage/none",
                "SlurmctldTimeout=30",
                "SlurmdTimeout=30",
                "InactiveLimit=0",
                "MinJobAge=600",
                f"NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count() or 1} RealMemory={_memory_mb()} "
                "State=UNKNOWN",
                f"PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
                "",
            ]
        )
    )
    return conf


def _stop(name: str, proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the daemon, SIGKILL after 10 s, and reap it (it runs in the foreground as our child)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            say(f"{name} ({proc.pid}) ignored SIGTERM: SIGKILL")
            proc.kill()
            proc.wait()


def _wait_idle(env: dict[str, str], root: Path) -> None:
    end = time.monotonic() + START_TIMEOUT_S
    state = ""
    while time.monotonic() < end:
        proc = subprocess.run(["sinfo", "-h", "-p", PARTITION, "-o", "%T"], capture_output=True, text=True, env=env)
        state = proc.stdout.strip()
        if state == "idle":
            return
        time.sleep(0.2)
    logs = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted(root.glob("*.log")))
    raise RuntimeError(f"the SLURM node did not become idle in {START_TIMEOUT_S:.0f} s (sinfo: {state!r})\n{logs}")


def _cancel_all(env: dict[str, str]) -> None:
    """Cancel every job of the partition and wait (up to 30 s) until squeue lists none."""
    subprocess.run(["scancel", "-p", PARTITION], env=env, capture_output=True)
    end = time.monotonic() + 30
    while time.monotonic() < end:
        queued = subprocess.run(["squeue", "-h", "-o", "%i"], env=env, capture_output=True, text=True).stdout
        if not queued.strip():
            return
        time.sleep(0.2)
    say(f"jobs still queued at shutdown: {queued.split()}")


@contextlib.contextmanager
def slurm_cluster() -> Iterator[dict[str, str]]:
    """Start munged, slurmctld and slurmd in a temp dir; yield the environment of a SLURM client; stop them."""
    reason = can_run()
    if reason:
        raise RuntimeError(f"cannot start a SLURM cluster here: {reason}")
    install()
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="vmibench-slurm-"))
    os.chmod(root, 0o700)  # munged insists its key and socket dirs are not writable by others
    daemons: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        key = root / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        conf = write_config(root)
        env = dict(os.environ, SLURM_CONF=str(conf))
        # in the foreground, as children of this process: stopped by pid and reaped here, never orphaned
        for name, cmd, ready in (
            ("munged", ["munged", "--foreground", "--force", f"--key-file={key}", f"--socket={root / 'munge.socket'}",
                        f"--pid-file={root / 'munged.pid'}", f"--log-file={root / 'munged.log'}",
                        f"--seed-file={root / 'munged.seed'}"], root / "munge.socket"),
            ("slurmctld", ["slurmctld", "-D", "-f", str(conf)], root / "slurmctld.pid"),
            ("slurmd", ["slurmd", "-D", "-f", str(conf)], root / "slurmd.pid"),
        ):  # fmt: skip
            log = (root / f"{name}.out").open("wb")
            daemons.append((name, subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)))
            end = time.monotonic() + 10
            while not ready.exists() and daemons[-1][1].poll() is None and time.monotonic() < end:
                time.sleep(0.05)
            if daemons[-1][1].poll() is not None:
                raise RuntimeError(f"{name} exited at start: {(root / f'{name}.out').read_text()[-1000:]}")
        _wait_idle(env, root)
        say(f"node idle in partition '{PARTITION}' {time.monotonic() - started:.1f} s after the start ({root})")
        yield env
    finally:
        if len(daemons) == 3 and daemons[1][1].poll() is None:  # jobs first: slurmd's job steps outlive slurmd
            _cancel_all(dict(os.environ, SLURM_CONF=str(root / "slurm.conf")))
        for name, proc in reversed(daemons):
            _stop(name, proc)
        shutil.rmtree(root, ignore_errors=True)
        say(f"daemons stopped ({', '.join(f'{n} {p.pid}' for n, p in daemons)})")


if __name__ == "__main__":
    with slurm_cluster() as client_env:
        print(subprocess.run(["sinfo"], capture_output=True, text=True, env=client_env).stdout)
