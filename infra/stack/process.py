"""A child server process we own: started detached, recorded by PID, stopped by PID.

Servers outlive the Python process that started them (``make run`` hands over to the services), so the
PID file is the source of truth. Stopping is SIGTERM, a grace period, then SIGKILL — always to the
process group we created, never to anything found by name.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class StackError(RuntimeError):
    """A server of the stack could not be started or did not become ready."""


def pid_alive(pid: int) -> bool:
    """True when a process with this PID exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def read_pid(pid_file: Path) -> int | None:
    """The PID recorded in ``pid_file`` if that process still runs, else None."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def rss_bytes(pid: int) -> int:
    """Resident memory of one process, from /proc (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll ``check`` until it is true; raise StackError naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except StackError:
            raise  # the check saw the server die: no point waiting any longer
        except Exception:  # noqa: BLE001, S110 - a not-yet-ready server raises all kinds of things
            pass
        time.sleep(interval)
    raise StackError(f"{what} not ready after {timeout:.0f}s")


@dataclass
class ManagedProcess:
    """One server process: its command line, log file and PID file."""

    name: str
    argv: Sequence[str]
    log_path: Path
    pid_path: Path
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    user: str | None = None  # run as this user via runuser (PostgreSQL refuses root)
    pid: int | None = None
    returncode: int | None = None  # known only for a child of this process, once it has exited
    _popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def running_pid(self) -> int | None:
        """PID of the already-running instance recorded in our PID file, if any."""
        return read_pid(self.pid_path)

    def start(self) -> int:
        """Start detached in its own session; return the PID (reusing a live one)."""
        existing = self.running_pid()
        if existing is not None:
            self.pid = existing
            return existing
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.pid_path.parent.mkdir(parents=True, exist_ok=True)
        argv = list(self.argv)
        if self.user is not None:
            argv = ["runuser", "-u", self.user, "--", *argv]
        env = {**os.environ, **self.env}
        with self.log_path.open("ab") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.cwd,
                start_new_session=True,
            )
        self._popen = proc  # kept so the child is reaped (and no ResourceWarning on collection)
        self.pid = proc.pid
        self.returncode = None
        self.pid_path.write_text(str(proc.pid))
        return proc.pid

    def exited(self) -> bool:
        """True when the process we started is gone (reaps it if it was our child)."""
        if self.pid is None:
            return True
        if self._popen is not None and self._popen.pid == self.pid:
            self.returncode = self._popen.poll()
            return self.returncode is not None
        return not pid_alive(self.pid)

    def log_tail(self, lines: int = 30) -> str:
        """The end of the log, for error messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0, sig: signal.Signals = signal.SIGTERM) -> None:
        """Send ``sig`` (SIGTERM) to the process group, wait up to ``timeout``, then SIGKILL it."""
        pid = self.pid if self.pid is not None else self.running_pid()
        if pid is None:
            self.pid_path.unlink(missing_ok=True)
            return
        self.pid = pid
        _signal_group(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.exited():
                break
            time.sleep(0.05)
        else:
            _signal_group(pid, signal.SIGKILL)
            while not self.exited():
                time.sleep(0.05)
        self.pid_path.unlink(missing_ok=True)
        self.pid = None


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
