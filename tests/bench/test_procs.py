"""How the benchmark counts CPU: a server with the processes below it, the clients (threads
of the bench's own process) without the servers the bench started."""

from __future__ import annotations

import os
import subprocess
import sys

from bench.procs import cpu_seconds, load_cpu_seconds, tree_cpu_seconds

# /proc counts user and system time in whole clock ticks (1/100 s), each rounded down.
TICKS = 2 / os.sysconf("SC_CLK_TCK")
BURN = (
    "import sys, time\n"
    "t = time.process_time()\n"
    "while time.process_time() - t < 0.3:\n"
    "    pass\n"
    "print('burnt', flush=True)\n"
    "sys.stdin.read()\n"
)


def test_the_clients_cpu_leaves_out_the_servers_this_process_started() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", BURN], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "burnt"
        me = os.getpid()
        own, tree, load = cpu_seconds(me), tree_cpu_seconds(me), load_cpu_seconds(me)
        assert own is not None and tree is not None and load is not None
        assert tree - own >= 0.3 - TICKS  # the child's CPU is below this process
        assert load - own < 0.3 - TICKS  # and not the clients'
        child_tree = load_cpu_seconds(child.pid)
        assert child_tree is not None and child_tree >= 0.3 - TICKS  # another process: its tree
    finally:
        child.communicate("", timeout=10)
