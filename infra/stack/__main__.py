"""``python -m infra.stack up|stop|status`` — what ``make run`` and ``make stop`` call.

``up`` starts everything in the run folder (default ``.tollgate/``, fixed ports, data kept across
runs), prints how to call the platform, and stays in the foreground: Ctrl-C or SIGTERM stops all it
started, by PID. ``stop`` does the same from another terminal, using the PID files.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from dataclasses import asdict, fields
from pathlib import Path

from infra.stack.paths import default_run_dir
from infra.stack.platform import Platform, PlatformConfig, Ports
from infra.stack.process import ManagedProcess, StackError, read_pid


def _config() -> PlatformConfig:
    run_dir = default_run_dir()
    ports = Ports()
    saved = run_dir / "ports.json"
    if saved.exists():
        known = {f.name for f in fields(Ports)}
        ports = Ports(**{k: v for k, v in json.loads(saved.read_text()).items() if k in known})
    if "TOLLGATE_PORT" in os.environ:
        ports.edge = int(os.environ["TOLLGATE_PORT"])
    saved_bus = run_dir / "bus"
    bus = os.environ.get("TOLLGATE_BUS") or (saved_bus.read_text().strip() if saved_bus.exists() else "kafka")
    if bus not in ("kafka", "tansu"):
        raise SystemExit(f"invalid setting TOLLGATE_BUS: expected 'kafka' or 'tansu' (got {bus!r})")
    return PlatformConfig(run_dir=run_dir, ports=ports, bus=bus)


def _banner(platform: Platform, seconds: float) -> str:
    base = f"http://127.0.0.1:{platform.config.ports.edge}"
    key = platform.demo_key()
    services = "\n".join(
        f"  {name:<9} {svc.base_url}/readyz" for name, svc in platform.services.items()
    )
    return f"""
Tollgate is up ({seconds:.1f}s). Run folder: {platform.config.run_dir}

  Base URL   {base}/v1
  Admin key  {platform.admin_key}
             (in {platform.config.run_dir / 'admin_key'}; set TOLLGATE_ADMIN_KEY to choose it)
  Demo key   {key}
             (account acct_demo, plan plan_demo; in {platform.demo_key_file})
  Bus        {platform.config.bus} at {platform.bus.bootstrap}
  Triton     {platform.triton.grpc_url} (model {platform.config.model}, TensorRT-LLM ensemble contract)

Every service answers readiness:
{services}

Try it (SmolLM2-135M on CPU, a few tokens per second on this machine):

  curl -s {base}/v1/chat/completions -H "Authorization: Bearer {key}" \\
    -H "Content-Type: application/json" \\
    -d '{{"model": "smollm2", "max_tokens": 24,
         "messages": [{{"role": "user", "content": "What is the capital of France?"}}]}}'

  {sys.executable} -c "
from openai import OpenAI
client = OpenAI(base_url='{base}/v1', api_key='{key}')
for chunk in client.chat.completions.create(model='smollm2', max_tokens=24, stream=True,
        messages=[{{'role': 'user', 'content': 'Name three colours.'}}]):
    print(chunk.choices[0].delta.content or '', end='', flush=True)
print()"

  curl -s {base}/v1/embeddings -H "Authorization: Bearer {key}" \\
    -H "Content-Type: application/json" \\
    -d '{{"model": "smollm2-135m-embed", "input": ["first text", "second text"]}}'

Create your own account, plan and key (management API, admin key; docs/management-api.md):

  curl -s {base}/v1/manage/plans -H "Authorization: Bearer {platform.admin_key}" \
    -d '{{"name": "starter", "requests_per_minute": 60, "budget_amount": "5.00", "budget_window": "1d"}}'
  curl -s {base}/openapi.json     # every management endpoint

Ctrl-C (or `make stop` from another terminal) stops everything this started.
"""


def up() -> int:
    config = _config()
    config.run_dir.mkdir(parents=True, exist_ok=True)
    platform = Platform(config)
    stopping = threading.Event()

    def on_signal(_sig: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    pid_file = _supervisor_pid_file()
    if read_pid(pid_file) is not None:
        print(f"already running (PID {read_pid(pid_file)}); `make stop` first", file=sys.stderr)
        return 1
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(str(os.getpid()))
    (config.run_dir / "bus").write_text(config.bus)  # so that `make stop` finds the same broker
    started = time.monotonic()
    try:
        platform.up()
    except (StackError, RuntimeError) as exc:
        print(f"start-up failed: {exc}", file=sys.stderr)
        platform.down()
        return 1
    print(_banner(platform, time.monotonic() - started), flush=True)
    while not stopping.wait(1.0):
        pass
    print("stopping ...", flush=True)
    platform.down()
    pid_file.unlink(missing_ok=True)
    print("stopped.", flush=True)
    return 0


def _supervisor_pid_file() -> Path:
    return default_run_dir() / "pids" / "stack.pid"


def stop() -> int:
    """Ask the foreground ``up`` to stop (it owns the children); stop by PID files if it is gone."""
    supervisor = ManagedProcess("stack", [], Path("/dev/null"), _supervisor_pid_file())
    if supervisor.running_pid() is not None:
        supervisor.stop(timeout=120.0)
    Platform(_config()).down()  # anything left over (an `up` that was SIGKILLed): by PID files
    return 0


def status() -> int:
    platform = Platform(_config())
    report = {name: svc.ready() for name, svc in platform.services.items()}
    print(json.dumps({"ports": asdict(platform.config.ports), "ready": report}, indent=2))
    return 0 if all(report.values()) else 1


if __name__ == "__main__":
    commands = {"up": up, "stop": stop, "status": status}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        raise SystemExit(f"usage: python -m infra.stack {{{'|'.join(commands)}}}")
    raise SystemExit(commands[sys.argv[1]]())
