"""Triton Inference Server on CPU, serving the numpy Llama behind TensorRT-LLM's `ensemble` contract.

Why this shape: PyPI's ``nvidia-pytriton`` wheel carries a real ``tritonserver`` (2.51) and the Python
backend, but expects to run from inside its own package. We copy the binary and backend once into
the shared cache (the stub has to sit in ``backends/python``), render the model repository into the
run folder (the model folder is a config parameter), and run the server like any other stack process:
own process group, PID file, stopped by PID.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import string
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

from infra.stack.paths import REPO_ROOT, cache_dir
from infra.stack.process import ManagedProcess, StackError, pid_alive, rss_bytes
from infra.triton.convert_model import SMOLLM2, TINY, ensure_converted

MODEL_NAME = "ensemble"
PREPROCESSING_MODEL = "preprocessing"  # tokenization alone: token counts without a prefill
EMBEDDING_MODEL = "embedding"  # /v1/embeddings, pooled from the same numpy Llama
SERVED_MODELS = (MODEL_NAME, PREPROCESSING_MODEL, EMBEDDING_MODEL)  # every folder of infra/triton/cpu
CPU_REPOSITORY = REPO_ROOT / "infra" / "triton" / "cpu"
ASSETS_STAMP = ".laid-out"
EXIT_TIMEOUT_S = 10  # in-flight requests get this long after SIGTERM; a generating thread stops at once
# What the stub's interpreter needs besides our venv (see ensure_stub_python for why numpy<2).
STUB_REQUIREMENTS = ("numpy==1.26.4",)


def _site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def _pytriton_dir() -> Path:
    path = _site_packages() / "pytriton" / "tritonserver"
    if not (path / "bin" / "tritonserver").is_file():
        raise StackError(f"{path} has no tritonserver: pip install --no-deps nvidia-pytriton==0.7.0")
    return path


def triton_home() -> Path:
    """Where the server binary and backends live once laid out: shared by every run."""
    return cache_dir() / "triton"


@contextlib.contextmanager
def _cache_lock(name: str) -> Iterator[None]:
    """Serialise one-time layout steps across processes (parallel test sessions share the cache)."""
    cache_dir().mkdir(parents=True, exist_ok=True)
    with open(cache_dir() / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure_triton_home() -> Path:
    """Copy tritonserver, its backends and the Python 3.11 stub into the cache once; ensure the stub venv."""
    home = triton_home()
    with _cache_lock("triton"):
        if not (home / ASSETS_STAMP).is_file():
            source = _pytriton_dir()
            version = f"{sys.version_info.major}.{sys.version_info.minor}"
            work = home.with_name(f"triton.tmp-{os.getpid()}")
            shutil.rmtree(work, ignore_errors=True)
            shutil.copytree(source, work, ignore=shutil.ignore_patterns("python_backend_stubs"))
            stub = source / "python_backend_stubs" / version / "triton_python_backend_stub"
            shutil.copy2(stub, work / "backends" / "python" / stub.name)
            (work / ASSETS_STAMP).write_text(f"nvidia-pytriton tritonserver, python stub {version}\n")
            shutil.rmtree(home, ignore_errors=True)
            os.replace(work, home)
    ensure_stub_python()
    return home


def stub_python_dir() -> Path:
    """The stub's own venv; keyed by our site-packages so that two checkouts never share one."""
    key = hashlib.sha256(f"{_site_packages()}|{STUB_REQUIREMENTS}".encode()).hexdigest()[:10]
    return cache_dir() / f"triton-stub-python-{key}"


def ensure_stub_python() -> Path:
    """A small venv whose ``python3`` the Python-backend stub embeds: numpy<2 first, then our venv.

    Why: the stub in nvidia-pytriton 0.7.0 is built with a pybind11 older than numpy 2. Under numpy 2
    it reads dtype item sizes from the wrong struct offset (0 for uint8/int32), so every tensor it
    passes between Triton and Python is corrupted, and string inputs crash the stub. The stub finds
    its interpreter as ``python3`` on PATH and ignores PYTHONPATH, so the fix is a venv whose
    site-packages holds numpy 1.26 and a .pth that appends our venv (tokenizers, safetensors).
    """
    env_dir = stub_python_dir()
    stamp = env_dir / ASSETS_STAMP
    with _cache_lock(env_dir.name):
        if stamp.is_file():
            return env_dir
        shutil.rmtree(env_dir, ignore_errors=True)
        python = env_dir / "bin" / "python"
        install = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        try:
            subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True)
            subprocess.run([*install, "--no-deps", *STUB_REQUIREMENTS], check=True)
            site = subprocess.run(
                [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
        except subprocess.CalledProcessError as exc:
            raise StackError(f"could not build the Triton stub venv {env_dir}: {exc}") from exc
        (Path(site) / "zz_tollgate_venv.pth").write_text(f"{_site_packages()}\n")
        stamp.write_text(" ".join(STUB_REQUIREMENTS) + "\n")
    return env_dir


def render_repository(target: Path, model_dir: Path, max_concurrent: int = 4) -> Path:
    """Copy infra/triton/cpu to ``target`` with the ``${...}`` placeholders of each config.pbtxt filled."""
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(CPU_REPOSITORY, target, ignore=shutil.ignore_patterns("__pycache__"))
    values = {"model_dir": str(model_dir), "max_concurrent_requests": str(max_concurrent)}
    for config in target.glob("*/config.pbtxt"):  # one per model of SERVED_MODELS
        config.write_text(string.Template(config.read_text()).safe_substitute(values))
    return target


class TritonServer:
    """One tritonserver with the CPU repository's models (``SERVED_MODELS``), bound to 127.0.0.1 on
    the given ports.

    ``model`` is ``"smollm2-135m-instruct"``, ``"tiny-random-llama"`` or a path to a converted folder.
    """

    def __init__(
        self,
        run_dir: Path,
        grpc_port: int,
        http_port: int,
        metrics_port: int,
        model: str = SMOLLM2,
    ) -> None:
        self.run_dir = run_dir.resolve()
        self.grpc_port = grpc_port
        self.http_port = http_port
        self.metrics_port = metrics_port
        self.model = model
        self.repository = self.run_dir / "triton" / "model_repository"
        self.model_dir: Path | None = None
        self._process: ManagedProcess | None = None

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def shm_prefix(self) -> str:
        """Names the stubs' /dev/shm regions after our port, so that leftovers can be told apart."""
        return f"tollgate_triton_{self.grpc_port}_"

    @property
    def pid(self) -> int | None:
        return self._managed().pid or self._managed().running_pid()

    def ensure_assets(self) -> Path:
        """Lay out server, stub venv and converted model, each only if not cached; return the model dir."""
        ensure_triton_home()
        if self.model in (SMOLLM2, TINY):
            self.model_dir = ensure_converted(tiny=self.model == TINY)
        else:
            self.model_dir = Path(self.model).resolve()
            if not (self.model_dir / "config.json").is_file():
                raise StackError(f"{self.model_dir} is not a converted model folder")
        return self.model_dir

    def _environment(self) -> dict[str, str]:
        """Library and interpreter paths the server and the Python stub need.

        The stub links ``libpython3.11.so``: without our interpreter's LIBDIR first it would load the
        system Python's. It takes ``python3`` from PATH as its interpreter: the stub venv comes first.
        """
        libs = [str(sysconfig.get_config_var("LIBDIR")), str(_site_packages() / "nvidia_pytriton.libs")]
        if os.environ.get("LD_LIBRARY_PATH"):
            libs.append(os.environ["LD_LIBRARY_PATH"])
        path = [str(stub_python_dir() / "bin"), str(Path(sys.executable).parent)]
        path.append(os.environ.get("PATH", "/usr/bin:/bin"))
        return {"LD_LIBRARY_PATH": ":".join(libs), "PATH": ":".join(path), "PYTHONNOUSERSITE": "1"}

    def _managed(self) -> ManagedProcess:
        if self._process is None:
            home = triton_home()
            argv = [
                str(home / "bin" / "tritonserver"),
                f"--model-repository={self.repository}",
                f"--backend-directory={home / 'backends'}",
                "--grpc-address=127.0.0.1",
                f"--grpc-port={self.grpc_port}",
                "--http-address=127.0.0.1",
                f"--http-port={self.http_port}",
                "--metrics-address=127.0.0.1",
                f"--metrics-port={self.metrics_port}",
                "--allow-gpu-metrics=false",
                "--pinned-memory-pool-byte-size=0",
                "--cuda-memory-pool-byte-size=0:0",
                "--min-supported-compute-capability=0",
                f"--exit-timeout-secs={EXIT_TIMEOUT_S}",
                # our own shared-memory name prefix, so that stop() can remove what a dead stub left
                f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
                "--log-verbose=0",
            ]
            self._process = ManagedProcess(
                name="triton",
                argv=argv,
                log_path=self.run_dir / "triton" / "tritonserver.log",
                pid_path=self.run_dir / "triton" / "tritonserver.pid",
                env=self._environment(),
            )
        return self._process

    def start(self) -> int:
        """Start the server (reusing a live one recorded in the PID file); return its PID."""
        process = self._managed()
        running = process.running_pid()
        if running is not None:
            process.pid = running
            return running
        model_dir = self.model_dir or self.ensure_assets()
        render_repository(self.repository, model_dir)
        return process.start()

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Block until every model of the repository (``SERVED_MODELS``) reports ready over gRPC; fail
        fast if the server died."""
        import tritonclient.grpc as grpcclient

        process = self._managed()
        client = grpcclient.InferenceServerClient(url=self.grpc_url)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if process.exited():
                    raise StackError(f"tritonserver exited during start:\n{process.log_tail()}")
                with contextlib.suppress(Exception):  # not listening yet: connection errors of all kinds
                    if all(client.is_model_ready(name) for name in SERVED_MODELS):
                        return
                time.sleep(0.1)
        finally:
            client.close()
        raise StackError(f"triton not ready after {timeout:.0f}s:\n{process.log_tail()}")

    def process_group_rss(self) -> int:
        """Resident bytes of the server and its Python stubs (the process group we started)."""
        pid = self.pid
        if pid is None or not pid_alive(pid):
            return 0
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[-1].split()
            except OSError:
                continue
            if int(fields[2]) == pid:  # fields: state, ppid, pgrp, ...
                total += rss_bytes(int(stat.parent.name))
        return total

    def stop(self) -> None:
        """SIGTERM the process group, give Triton its exit timeout plus slack, then SIGKILL."""
        self._managed().stop(timeout=EXIT_TIMEOUT_S + 20)
        # A stub that died uncleanly leaves its shared-memory region behind; this prefix is ours alone.
        for region in Path("/dev/shm").glob(f"{self.shm_prefix}*"):
            region.unlink(missing_ok=True)
