"""A one-node SLURM cluster for the tests, from Debian's `slurm-wlm` and `munge` packages.

It installs nothing (`.ci/install-slurm.sh` does, as root). Everything it writes lives in
one temporary folder: slurm.conf, gres.conf, state, logs, a munge key and socket, and two
fake GPUs (character devices with NVIDIA's major number 195), which are enough for SLURM
to schedule `--gpus=1` jobs and set their CUDA_VISIBLE_DEVICES. `stop` ends exactly the
daemons `start` began, by pid. Clients (sbatch, squeue, Snakemake's SLURM plugin) find the
cluster through SLURM_CONF, which `env()` sets.

    python tests/slurm_cluster.py start DIR    # prints the SLURM_CONF to export
    python tests/slurm_cluster.py stop DIR
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
GPUS = 2
# More CPUs than the 2-core CI machine has, so that jobs which mostly wait (two retrains,
# the search's workers) run side by side as they would on a real node.
CPUS = 4
REAL_MEMORY_MB = 16000
DEF_MEM_PER_CPU_MB = 1000  # without it, a job without --mem takes the whole node
READY_SECONDS = 60


def missing() -> list[str]:
    """The programs this cluster needs that are not installed."""
    wanted = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "sinfo", "scontrol")
    return [name for name in wanted if shutil.which(name, path=_sbin_path()) is None]


def _sbin_path() -> str:
    return os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def _which(name: str) -> str:
    return shutil.which(name, path=_sbin_path()) or name


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _slurm_conf(root: Path, host: str) -> str:
    return "\n".join([
        "ClusterName=minigen-test",
        f"SlurmctldHost={host}",
        "SlurmUser=root",
        f"SlurmctldPort={_free_port()}",
        f"SlurmdPort={_free_port()}",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={root}/munge/munge.socket",
        f"StateSaveLocation={root}/state",
        f"SlurmdSpoolDir={root}/spool",
        f"SlurmctldPidFile={root}/slurmctld.pid",
        f"SlurmdPidFile={root}/slurmd.pid",
        f"SlurmctldLogFile={root}/slurmctld.log",
        f"SlurmdLogFile={root}/slurmd.log",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_CPU_Memory",
        f"DefMemPerCPU={DEF_MEM_PER_CPU_MB}",
        "MinJobAge=3600",  # finished jobs stay listed by squeue: the plugin's status and the test's checks
        "ReturnToService=2",
        "GresTypes=gpu",
        "SlurmdParameters=config_overrides",  # trust CPUs/RealMemory below, not the machine
        "AccountingStorageType=accounting_storage/none",
        "JobAcctGatherType=jobacct_gather/none",
        "JobCompType=jobcomp/none",
        "MpiDefault=none",
        "SchedulerParameters=sched_interval=1",
        f"NodeName={host} CPUs={CPUS} RealMemory={REAL_MEMORY_MB} Gres=gpu:{GPUS} State=UNKNOWN",
        f"PartitionName=main Nodes={host} Default=YES MaxTime=INFINITE State=UP",
        "",
    ])


class Cluster:
    """The cluster whose files live in `root`."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.conf = self.root / "slurm.conf"

    def env(self, base: dict | None = None) -> dict:
        """`base` (default: this process's environment) with the cluster's client set-up."""
        env = dict(os.environ if base is None else base)
        env["SLURM_CONF"] = str(self.conf)
        env["PATH"] = os.pathsep.join([str(self.root / "bin"), env.get("PATH", ""), "/usr/sbin", "/sbin"])
        return env

    # ------------------------------------------------------------ start

    def start(self) -> None:
        host = socket.gethostname().split(".")[0]
        for sub in ("state", "spool", "dev"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)  # munged runs as the munge user and must reach its folder
        for index in range(GPUS):
            os.mknod(self.root / "dev" / f"nvidia{index}", 0o666 | 0o020000, os.makedev(195, index))
        self.conf.write_text(_slurm_conf(self.root, host))
        self._srun_wrapper()
        (self.root / "gres.conf").write_text(f"AutoDetect=off\nName=gpu File={self.root}/dev/nvidia[0-{GPUS - 1}]\n")
        self._start_munge()
        self._spawn("slurmctld", [_which("slurmctld"), "-D", "-c", "-f", str(self.conf)])
        self._spawn("slurmd", [_which("slurmd"), "-D", "-N", host, "-f", str(self.conf)])
        self._wait_until_idle()

    def _srun_wrapper(self) -> None:
        # Snakemake's jobstep executor drops every SLURM_* variable but the job's id from
        # the environment of the `srun` it runs inside a job, SLURM_CONF included. A real
        # cluster's srun finds /etc/slurm/slurm.conf; this one gets its config back here.
        wrapper = self.root / "bin" / "srun"
        wrapper.parent.mkdir(exist_ok=True)
        wrapper.write_text(f'#!/bin/sh\nSLURM_CONF={self.conf} exec {_which("srun")} "$@"\n')
        wrapper.chmod(0o755)

    def _start_munge(self) -> None:
        munge = pwd.getpwnam("munge")
        folder = self.root / "munge"
        folder.mkdir()
        folder.chmod(0o755)  # munged wants its socket folder searchable by all
        key = folder / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        for path in (folder, key):
            os.chown(path, munge.pw_uid, munge.pw_gid)
        self._spawn("munged", [
            _which("munged"), "--foreground", f"--key-file={key}", f"--socket={folder}/munge.socket",
            f"--pid-file={folder}/munged.pid", f"--log-file={folder}/munged.log",
            f"--seed-file={folder}/munged.seed",
        ], user="munge")
        self._wait_for(lambda: (folder / "munge.socket").exists(), "munged's socket")

    def _spawn(self, name: str, command: list[str], user: str | None = None) -> None:
        with open(self.root / f"{name}.out", "wb") as log:  # the daemon keeps its own copy
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.env(),
                                       user=user, start_new_session=True)
        (self.root / f"{name}.started").write_text(str(process.pid))

    def _wait_for(self, ready, what: str) -> None:
        deadline = time.monotonic() + READY_SECONDS
        while not ready():
            dead = [name for name in DAEMONS if self._pid(name) and not _alive(self._pid(name))]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"SLURM test cluster: no {what} ({', '.join(dead) or 'timed out'} "
                                   f"died); logs in {self.root}:\n{self.logs()}")
            time.sleep(0.2)

    def _wait_until_idle(self) -> None:
        def idle() -> bool:
            proc = subprocess.run([_which("sinfo"), "-h", "-o", "%t"], env=self.env(),
                                  capture_output=True, text=True)
            return proc.returncode == 0 and proc.stdout.strip() == "idle"

        self._wait_for(idle, "idle node")

    def logs(self) -> str:
        return "\n".join(f"== {path.name}\n{path.read_text(errors='replace')[-3000:]}"
                         for path in sorted(self.root.rglob("*.out")) + sorted(self.root.rglob("*.log")))

    # ------------------------------------------------------------ stop

    def _pid(self, name: str) -> int | None:
        path = self.root / f"{name}.started"
        return int(path.read_text()) if path.exists() else None

    def stop(self) -> None:
        """End the daemons `start` began, by pid: SLURM's two at once, then munged."""
        self._end(["slurmd", "slurmctld"])
        self._end(["munged"])

    def _end(self, names: list[str]) -> None:
        """SIGTERM to each, SIGKILL to any still running 10 s later; reaped, forgotten."""
        pids = {name: self._pid(name) for name in names}
        pids = {name: pid for name, pid in pids.items() if pid is not None}
        for pid in pids.values():
            if _alive(pid):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in pids.values()) and time.monotonic() < deadline:
            time.sleep(0.1)
        for name, pid in pids.items():
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
            _reap(pid)
            (self.root / f"{name}.started").unlink()


def _alive(pid: int) -> bool:
    """True while `pid` runs; a child of ours that exited is reaped here (no zombie)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:  # not our child (a `stop` from another process)
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print(__doc__, file=sys.stderr)
        return 2
    action, root = argv
    cluster = Cluster(root)
    if action == "start":
        cluster.start()
        print(f"export SLURM_CONF={cluster.conf}")
    else:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
