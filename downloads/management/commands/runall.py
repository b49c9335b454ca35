"""Run every process of the Procfile in the foreground (a tiny honcho): one command for a single host.

Output lines are prefixed with the process name. Ctrl-C / SIGTERM stops all; if one process dies, the
others are stopped too and the exit code is non-zero, so a supervisor (or the user) sees it.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management import BaseCommand, CommandError


def read_procfile(path: Path) -> dict[str, str]:
    processes = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, command = line.partition(":")
            processes[name.strip()] = command.strip()
    return processes


class Command(BaseCommand):
    help = "Start web, worker and engine (as listed in the Procfile) and supervise them."

    def add_arguments(self, parser):
        parser.add_argument("--procfile", default=str(settings.BASE_DIR / "Procfile"))
        parser.add_argument("--only", nargs="*", help="Process names to start (default: all).")

    def handle(self, *args, procfile: str, only: list[str] | None, **options):
        processes = read_procfile(Path(procfile))
        if only:
            processes = {name: cmd for name, cmd in processes.items() if name in only}
        if not processes:
            raise CommandError("Nothing to run.")
        env = dict(os.environ)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        width = max(map(len, processes))
        children = {
            name: subprocess.Popen(
                ["/bin/sh", "-c", f"exec {cmd}"], cwd=settings.BASE_DIR, env=env, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
            for name, cmd in processes.items()
        }
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        self.stdout.write(f"Flotilla is starting: {', '.join(children)} — http://{env.get('HOST', '127.0.0.1')}:"
                          f"{env.get('PORT', '8000')}/  (Ctrl-C stops everything)")
        code = self._pump(children, width, lambda: stopping)
        self._terminate(children)
        sys.exit(code)

    def _pump(self, children, width, should_stop) -> int:
        selector = selectors.DefaultSelector()
        for name, proc in children.items():
            selector.register(proc.stdout, selectors.EVENT_READ, name)
        while not should_stop():
            for key, _ in selector.select(timeout=0.5):
                line = key.fileobj.readline()
                if line:
                    self.stdout.write(f"{key.data:<{width}} | {line.decode(errors='replace').rstrip()}")
            for name, proc in children.items():
                if proc.poll() is not None:
                    self.stderr.write(f"{name} exited with code {proc.returncode}; stopping the others.")
                    return proc.returncode or 1
        return 0

    @staticmethod
    def _terminate(children) -> None:
        # SIGTERM to each main process only: it stops its own children (qcluster's workers get confused
        # and shut down slowly when they receive the signal directly). Whatever is left after the grace
        # period, the whole group, is killed.
        for proc in children.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 15
        for proc in children.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
