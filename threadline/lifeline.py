"""Tying a child process's life to its parent's: when the parent dies, the child stops.

`threadline up` and `import` run the services as child processes, and the analysis service
runs its follower as one. A child that outlives its parent keeps its ports and its database
connections, so the next `up` cannot start and `reparse` cannot get the database. Three things
make sure that never happens, in this order:

1. `prctl(PR_SET_PDEATHSIG, SIGTERM)` (Linux): the kernel sends SIGTERM the moment the parent
   dies, even by SIGKILL, and the child stops as gracefully as it would on Ctrl-C. It is set
   first, before the child's slow imports, through this module's launcher:
       python -m threadline.lifeline PARENT_PID MODULE [ARG...]
   which binds, then runs MODULE as `python -m MODULE ARG...` would.
2. Right after setting it, the parent pid is compared with the one the parent passed: a parent
   that died before the child got this far (the signal would never come) is caught here.
3. A watchdog thread checks every `CHECK_SECONDS` that the parent is still the same process
   (other systems have no PDEATHSIG; and a child busy at the lowest priority may be slow to
   act on the signal): when it is gone the child gets SIGTERM, and SIGKILL `GRACE_SECONDS`
   later if it has not stopped by then.

Note that Linux sends the death signal when the *thread* that started the child ends: the
parents here start their children from their main thread, which lives as long as they do.
"""

from __future__ import annotations

import ctypes
import os
import runpy
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1
CHECK_SECONDS = 1.0
GRACE_SECONDS = 15.0

_parent: int | None = None


def parent() -> int | None:
    """The pid of the process this one is bound to (None: not bound)."""
    return _parent


def command(parent_pid: int, module: str, *args: str) -> list[str]:
    """The command line that runs `python -m module args...` bound to `parent_pid`."""
    return [sys.executable, "-m", "threadline.lifeline", str(parent_pid), module, *args]


def bind(parent_pid: int) -> None:
    """Stop this process when `parent_pid` (its parent) dies; exit now if it already has."""
    global _parent
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent_pid:  # died before the line above: no signal will come
        print(f"threadline: parent process {parent_pid} is gone; not starting",
              file=sys.stderr)
        os._exit(1)
    _parent = parent_pid
    threading.Thread(target=_watch, args=(parent_pid,), name="lifeline", daemon=True).start()


def _watch(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(CHECK_SECONDS)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(GRACE_SECONDS)
    os.kill(os.getpid(), signal.SIGKILL)


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit("usage: python -m threadline.lifeline PARENT_PID MODULE [ARG...]")
    bind(int(argv[0]))
    sys.argv = [argv[1], *argv[2:]]
    runpy.run_module(argv[1], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    # Through the package, not this __main__ copy, so that `parent()` answers in the module.
    from threadline import lifeline

    lifeline.main(sys.argv[1:])
