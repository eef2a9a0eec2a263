"""Starting `nnlab serve`: the socket bound first (a port in use, a host that is not this
machine's: one line, before anything else), the URL on stdout, then uvicorn until Ctrl-C."""

from __future__ import annotations

import errno
import socket
import sys
import threading

from nnlab.helpers.console import stderr_console
from nnlab.helpers.errors import NnlabError
from nnlab.store import folders

LOCAL = ("127.0.0.1", "localhost", "::1")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (0: any free port), or a one-line refusal."""
    if not 0 <= port <= 65535:
        raise NnlabError(f"--port={port}: choose 1 to 65535 (or 0 for any free port)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise NnlabError(f"--host={host}: not an address of this machine ({e.strerror})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise NnlabError(
                f"--port={port}: in use on {host}; choose another (--port=0: any free one)"
            ) from None
        raise NnlabError(
            f"--host={host} --port={port}: cannot listen there ({e.strerror})"
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket, host: str) -> str:
    """The address to open in a browser."""
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


INSTALL_HINT = 'pip install -e ".[serve]" (or pip install "nnlab[serve]")'


def serve(runs_dir=None, *, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the run store until Ctrl-C: the URL on stdout, the log on stderr."""
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError:
        raise NnlabError(f"nnlab serve needs Starlette and uvicorn: {INSTALL_HINT}") from None

    from nnlab.server.app import build

    root = folders.runs_root(runs_dir)
    if not root.is_dir():
        raise NnlabError(f"{root}: no run store there (nnlab train makes one; or --runs_dir=DIR)")
    sock = bind(host, port)
    if host not in LOCAL:  # the store holds people's work: say who can read it
        stderr_console().print(
            f"warning: serving on {host}: anyone who can reach port {sock.getsockname()[1]} "
            "can read every run in the store",
            soft_wrap=True,
        )
    print(url_of(sock, host), flush=True)
    app = build(root)
    # the runs table read once now, so that the first page of a large store opens at once
    threading.Thread(target=app.state.pages.runs, daemon=True).start()
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off", server_header=False
    )
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn raises Ctrl-C again once it has shut down: the way out
        pass
    finally:
        sock.close()
    print("nnlab: serve stopped", file=sys.stderr)
