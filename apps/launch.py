"""`dlsuite launch`: a distributed job on this machine, to try it before a cluster.

    dlsuite launch --workers 2 -- vision train --quick                # synchronous (multi_worker)
    dlsuite launch --workers 2 --timeout 600 -- language train epochs=2
    dlsuite launch --workers 2 --ps 1 -- language train               # asynchronous (parameter_server)
    dlsuite launch --ray --workers 2 -- vision train --quick          # Ray Train starts them (apps/ray_launch.py)

Starts one `dlsuite <app> <command> ...` process per task on localhost, each with its `TF_CONFIG`
(free 127.0.0.1 ports) and `strategy=multi_worker` (or, with `--ps`, `strategy=parameter_server`)
unless the command names a strategy. Synchronous: worker 0 is the chief. With `--ps K`: a chief
task runs the app, the workers and K parameter servers serve it, and they are stopped as soon as
the chief ends. The chief's output streams here; the others' goes to log files (their paths are
printed). If any process fails, the others are stopped; after `--timeout` seconds all are
stopped. Exits with the chief's status (or the failed task's).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

POLL_SECONDS = 0.5
GRACE_SECONDS = 60  # how long the other workers may take to finish after the chief


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def task_configs(workers: int, parameter_servers: int = 0) -> list[tuple[str, str]]:
    """(task name, TF_CONFIG) of each task of a localhost cluster, the chief first: worker 0, or
    with parameter servers a "chief" task beside the workers and the "ps" tasks."""
    kinds = {"worker": workers} if not parameter_servers else {"chief": 1, "worker": workers, "ps": parameter_servers}
    cluster = {kind: [f"127.0.0.1:{free_port()}" for _ in range(count)] for kind, count in kinds.items()}
    return [(f"{kind} {i}", json.dumps({"cluster": cluster, "task": {"type": kind, "index": i}}))
            for kind, count in kinds.items() for i in range(count)]


def task_command(args: list[str], parameter_servers: int = 0) -> list[str]:
    if not any(a.startswith("strategy=") for a in args):
        args = [*args, "strategy=parameter_server" if parameter_servers else "strategy=multi_worker"]
    return [sys.executable, "-m", "dlsuite.apps.cli", *args]


def start_tasks(args: list[str], workers: int, log_dir: Path, parameter_servers: int = 0) -> list[subprocess.Popen]:
    procs = []
    command = task_command(args, parameter_servers)
    for index, (name, tf_config) in enumerate(task_configs(workers, parameter_servers)):
        env = dict(os.environ, TF_CONFIG=tf_config)
        if index == 0:
            procs.append(subprocess.Popen(command, env=env))
            continue
        log_path = log_dir / f"{name.replace(' ', '-')}.log"
        log = open(log_path, "w")  # a file, not a pipe: a full pipe stalls a worker
        procs.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
        log.close()
        print(f"[launch] {name}: log {log_path}", file=sys.stderr)
    return procs


def stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM to every running process, SIGKILL to those still there after 10 s."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def supervise(procs: list[subprocess.Popen], timeout: float | None, servers_follow_chief: bool = False) -> int:
    """Waits for the job; returns the exit status the launcher should end with. With
    `servers_follow_chief` (a parameter-server job) the other tasks serve until stopped: the job
    ends with the chief."""
    deadline = time.monotonic() + timeout if timeout else None
    chief_done_at = None
    while True:
        codes = [proc.poll() for proc in procs]
        failed = next((i for i, code in enumerate(codes) if code not in (None, 0)), None)
        if failed is not None:
            print(f"[launch] task {failed} exited with status {codes[failed]}; stopping the others.", file=sys.stderr)
            stop(procs)
            return codes[failed]
        if all(code == 0 for code in codes):
            return 0
        if servers_follow_chief and codes[0] == 0:
            stop(procs)
            return 0
        now = time.monotonic()
        if codes[0] == 0 and chief_done_at is None:
            chief_done_at = now
        if chief_done_at is not None and now - chief_done_at > GRACE_SECONDS:
            print("[launch] the chief finished but a worker did not; stopping it.", file=sys.stderr)
            stop(procs)
            return 0
        if deadline is not None and now > deadline:
            print(f"[launch] the job ran past --timeout {timeout:g} s; stopping every worker.", file=sys.stderr)
            stop(procs)
            return 124
        time.sleep(POLL_SECONDS)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dlsuite launch", description=__doc__.splitlines()[0],
                                     usage="dlsuite launch --workers N [--ps K] [--timeout S] [--logs DIR] -- <app> <command> ...")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (>= 1)")
    parser.add_argument("--ps", type=int, default=0, help="parameter servers: asynchronous training (0: synchronous)")
    parser.add_argument("--ray", action="store_true", help="start the workers with Ray Train (synchronous only)")
    parser.add_argument("--timeout", type=float, default=None, help="stop every worker after this many seconds")
    parser.add_argument("--logs", default=None, help="folder for the non-chief workers' logs (default: a temporary one)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- <app> <command> [options] [key=value ...]")
    ns = parser.parse_args(argv)
    command = ns.command[1:] if ns.command[:1] == ["--"] else ns.command
    if ns.workers < 1:
        parser.error("--workers must be >= 1")
    if ns.ps < 0:
        parser.error("--ps must be >= 0")
    if len(command) < 2:
        parser.error("give the app command after --, e.g. dlsuite launch --workers 2 -- vision train --quick")
    if ns.ray:
        if ns.ps:
            parser.error("--ray starts synchronous jobs only; drop --ps, or drop --ray for a parameter-server job")
        from dlsuite.apps.ray_launch import launch_on_ray

        return launch_on_ray(command, ns.workers, ns.timeout)
    log_dir = Path(ns.logs) if ns.logs else Path(tempfile.mkdtemp(prefix="dlsuite-launch-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    procs = start_tasks(command, ns.workers, log_dir, ns.ps)
    try:
        return supervise(procs, ns.timeout, servers_follow_chief=ns.ps > 0)
    except KeyboardInterrupt:
        stop(procs)
        return 130
