"""A warm `nnlab` for the documentation test: one server process imports torch and nnlab's
commands once, then forks a child for each `nnlab` command a page runs. A command started
cold spends 5-6 s here importing torch (and the compiler modules its optimizers load) for
well under a second of work; forked from the server it starts at once, so the pages' hundred
commands cost a minute less of CI.

The child gets the caller's stdin, stdout and stderr (passed over a Unix socket), its working
directory, environment and arguments, runs nnlab's entry point (`nnlab.commands.cli.main`, the
console script's target) and sends its exit status back; the caller, the `nnlab` script
`install` writes, exits with it. The console script itself is tested cold elsewhere
(tests/test_cli.py).
"""

from __future__ import annotations

import array
import json
import os
import signal
import socket
import subprocess
import sys
import traceback
from pathlib import Path

FDS = 3  # stdin, stdout, stderr

CLIENT = """#!{python} -S
import array, json, os, socket, sys

s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect({path!r})
msg = json.dumps({{"argv": ["nnlab", *sys.argv[1:]], "cwd": os.getcwd(), "env": dict(os.environ)}})
data = msg.encode()
s.sendmsg(
    [len(data).to_bytes(8, "big") + data],
    [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [0, 1, 2]))],
)
reply = b""
while chunk := s.recv(64):
    reply += chunk
sys.exit(int(reply) if reply.strip() else 1)
"""


def install(folder: Path) -> subprocess.Popen:
    """Start a server listening in `folder` and write `folder/bin/nnlab`, its client: put
    that folder first on PATH. Returns the server (kill it when done)."""
    path = folder / "nnlab.sock"
    server = subprocess.Popen(
        [sys.executable, __file__, str(path)], stdout=subprocess.PIPE, text=True
    )
    if server.stdout.readline().strip() != "ready":
        server.kill()
        raise RuntimeError("the warm nnlab server did not start")
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    client = bin_dir / "nnlab"
    client.write_text(CLIENT.format(python=sys.executable, path=str(path)))
    client.chmod(0o755)
    return server


def _receive(conn: socket.socket) -> tuple[dict, list[int]]:
    """A request: its JSON and the caller's three file descriptors."""
    fds: list[int] = []
    data = b""
    need = None
    while need is None or len(data) < need:
        chunk, ancillary, _, _ = conn.recvmsg(1 << 16, socket.CMSG_SPACE(FDS * 4))
        if not chunk:
            raise ConnectionError("the client went away")
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.extend(array.array("i", payload[: len(payload) - len(payload) % 4]))
        data += chunk
        if need is None and len(data) >= 8:
            need = 8 + int.from_bytes(data[:8], "big")
    return json.loads(data[8:]), fds


def _child(request: dict, fds: list[int]) -> int:
    """Run one command as the caller would have, in this forked child; its exit status."""
    import torch

    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = request["argv"]
    # torch read the server's OMP_NUM_THREADS at import: apply the caller's
    threads = os.environ.get("OMP_NUM_THREADS")
    torch.set_num_threads(int(threads) if threads else (os.cpu_count() or 1))
    try:
        from nnlab.commands import cli

        cli.main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:
            pass
    return code


def serve(path: str) -> None:
    """Import what every command imports, then fork a child per request, forever."""
    import matplotlib.figure  # noqa: F401
    import numpy  # noqa: F401
    import torch._dynamo  # noqa: F401  (an optimizer's first use imports it)
    import torch._inductor.config  # noqa: F401  (torch.use_deterministic_algorithms does)

    from nnlab.commands import cli  # noqa: F401

    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(64)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the children reap themselves
    print("ready", flush=True)
    while True:
        conn, _ = server.accept()
        try:
            request, fds = _receive(conn)
        except (ConnectionError, ValueError):
            conn.close()
            continue
        if os.fork() == 0:
            server.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # its own subprocesses are waited
            code = _child(request, fds)
            try:
                conn.sendall(str(code).encode())
            finally:
                os._exit(code)
        conn.close()
        for fd in fds:
            os.close(fd)


if __name__ == "__main__":
    serve(sys.argv[1])
