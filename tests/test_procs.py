"""The process helpers the e2e tests rely on: stopping a process group leaves nothing of it running."""

import subprocess
import sys

from tests import procs
from tests.e2e.conftest import wait_for

# A leader whose children block the way a qcluster pusher does (in a read that a SIGKILL ends), each
# announcing itself once it runs.
GROUP = """
import multiprocessing, os, time

def child(ready):
    ballast = bytearray(128 * 2**20)  # memory to give back: the child takes a moment to die, as a pusher may
    ready.put(os.getpid())
    os.read(os.pipe()[0], 1)
    del ballast


if __name__ == "__main__":
    ready = multiprocessing.Queue()
    for _ in range(4):
        multiprocessing.Process(target=child, args=(ready,)).start()
    print(*sorted(ready.get() for _ in range(4)), flush=True)
    time.sleep(600)
"""


def test_kill_group_returns_once_no_process_of_the_group_runs():
    proc = subprocess.Popen([sys.executable, "-c", GROUP], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    children = [int(pid) for pid in proc.stdout.readline().split()]
    assert sorted(procs.group_members(proc.pid)) == sorted([proc.pid, *children])
    procs.kill_group(proc)
    assert procs.group_members(proc.pid) == []
    assert proc.returncode == -9
    proc.stdout.close()


def test_a_zombie_is_not_counted_as_running():
    proc = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    wait_for(lambda: procs.process_stat(proc.pid)[0] == "Z", "the child to exit, unreaped")
    assert procs.group_members(proc.pid) == []  # its files are closed: nothing of it can take a task
    assert proc.wait() == 0
