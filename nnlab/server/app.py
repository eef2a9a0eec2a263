"""The web app of `nnlab serve` (Starlette): the runs page, a page per run, sweep or set of
runs compared (the report's own page, its data fetched), the JSON they read, and a stream
of server-sent events that says when what a page shows has changed.

Read-only by construction: GET and HEAD routes only; every id is checked as nnlab checks a
run id (nnlab.store.folders.validate_id, then opened as the commands open it: inside the
store, no link out of it) before it names a path; every stored string reaches the pages as
JSON and is shown as text. A Content-Security-Policy allows scripts from the server alone
(no inline script, no inline event handler) and no other origin at all.
"""

from __future__ import annotations

import asyncio
import html
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from nnlab.helpers.errors import NnlabError, RunError
from nnlab.render import report
from nnlab.server import watch
from nnlab.store import folders, sweeps, table

CSP = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; img-src 'self' data: blob:; "
    "style-src 'self' 'unsafe-inline'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
SCRIPTS = ("page.js", "runs.js")  # everything under /static/
POLL_SECONDS = 0.5  # how often a stream looks at the files of what its page shows
HEARTBEAT_SECONDS = 15.0  # a comment line that keeps proxies and browsers from timing out
MAX_IDS = sweeps.MAX_ON_A_PAGE  # runs on one page
CACHE_ENTRIES = 16  # page data kept, by ids and fingerprint
COMPUTING = 2  # page data computed at once, at most (this machine's cores)


def _ids(text: str | None) -> list[str]:
    """The ids of ?ids=a,b (each checked as a run id), at most MAX_IDS."""
    ids = [i for i in (text or "").split(",") if i]
    if not ids:
        raise NnlabError("give ids: ?ids=RUN_ID[,RUN_ID...]")
    if len(ids) > MAX_IDS:
        raise NnlabError(f"at most {MAX_IDS} ids on one page")
    return [folders.validate_id(i) for i in ids]


def _since(text: str | None) -> int | None:
    """?since=STEP, a step the page has: a whole number, or a one-line refusal."""
    if text is None:
        return None
    if not text.isdigit() or len(text) > 12:
        raise NnlabError(f"since={text[:40]!r}: give the newest step the page has (a whole number)")
    return int(text)


def _refusal(e: NnlabError) -> PlainTextResponse:
    """A user's mistake as a plain one-line answer: 404 for what is not there, else 400."""
    text = str(e).splitlines()[0] if str(e) else "bad request"
    missing = text.startswith(("no run", "no sweep")) or isinstance(e, RunError)
    return PlainTextResponse(text, status_code=404 if missing else 400, headers=HEADERS)


class Pages:
    """The app's state: the store it reads, and the page data it has computed lately."""

    def __init__(self, root: Path):
        self.root = root
        self._cache: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        # one computation per page and state however many clients ask at once (the others
        # wait for it), and at most COMPUTING at a time: 50 clients once made 50 copies
        self._pending: dict = {}
        self._computing = threading.BoundedSemaphore(COMPUTING)
        self._rows: dict = {}  # the runs table's rows, each read again only when it changed
        self._prints: dict = {}  # ids -> (when, fingerprint): one look per interval for all

    def check(self, ids: list[str]) -> None:
        """Each id names a run or a sweep of the store, opened as the commands open them."""
        for i in ids:
            if sweeps.is_sweep(i, self.root):
                sweeps.open_sweep(i, self.root)
            else:
                folders.open_run(i, self.root)

    def page_data(self, ids: list[str], first: bool = False, since: int | None = None) -> bytes:
        """The report's data of the runs as JSON, computed again only when their files
        changed (first: each recording's newest snapshot alone, for a page's first paint;
        since: the snapshots after that step alone, for a page that has the rest). Clients
        asking for the same page at once share one computation and one body."""
        key = (tuple(ids), first, since, tuple(watch.item_print(self.root, i) for i in ids))
        while True:
            with self._lock:
                if key in self._cache:
                    self._cache.move_to_end(key)
                    return self._cache[key]
                waiting = self._pending.get(key)
                if waiting is None:
                    self._pending[key] = threading.Event()
                    break
            waiting.wait()  # another request computes it: then it is cached (or failed)
            with self._lock:
                if key in self._cache:
                    return self._cache[key]
        try:
            with self._computing:
                data = report.page_data(
                    ids, self.root, points=1000, console=_quiet(), last_only=first, since=since
                )
            body = json.dumps(data, separators=(",", ":"), allow_nan=False).encode()
            with self._lock:
                self._cache[key] = body
                while len(self._cache) > CACHE_ENTRIES:
                    self._cache.popitem(last=False)
            return body
        finally:
            with self._lock:
                self._pending.pop(key).set()

    def fingerprint(self, ids: list[str], fresh: float = POLL_SECONDS / 2) -> tuple:
        """What a stream watches (the page's runs, or the store's listing), looked at once
        per `fresh` seconds however many pages follow it (50 clients cost one look)."""
        key = tuple(ids)
        now = time.monotonic()
        with self._lock:
            seen = self._prints.get(key)
        if seen is not None and now - seen[0] < fresh:
            return seen[1]
        value = fingerprint(self.root, ids)
        with self._lock:
            self._prints[key] = (now, value)
            if len(self._prints) > 4 * CACHE_ENTRIES:  # pages long closed: forgotten
                oldest = sorted(self._prints, key=lambda k: self._prints[k][0])
                for k in oldest[: len(oldest) // 2]:
                    del self._prints[k]
        return value

    def runs(self) -> dict:
        """The runs table and the sweeps, as the runs page reads them."""
        rows = []
        with self._lock:
            listed = table.rows(self.root, self._rows)
        for r in reversed(listed):
            family = _family(r.model)
            rows.append(
                {
                    "id": r.id,
                    "model": r.model,
                    "dataset": r.dataset,
                    "status": str(r.status),
                    "epochs": r.epochs,
                    "steps": r.steps,
                    "headline": r.headline,
                    "value": r.value,
                    "shown": family.format_headline(r.value) if family else "-",
                    "created": r.created,
                    "settings": r.settings,
                    "tags": list(r.tags),
                    "note": r.note,
                    "sweep": r.sweep,
                    "problem": r.problem,
                }
            )
        return {"store": str(self.root), "runs": rows, "sweeps": sweeps.list_sweep_ids(self.root)}


def _family(model: str):
    from nnlab import families

    return families.FAMILIES.get(model)


def _quiet():
    """A console that keeps the page data's progress off the server's log."""
    import io

    from rich.console import Console

    return Console(file=io.StringIO())


def _shell(ids: list[str]) -> str:
    """The report's page for the ids, its data fetched from the server and fetched again
    when the server says they changed."""
    query = html.escape(",".join(ids), quote=True)
    page = report.page_asset("page.html").replace(
        "<!--NNLAB_SCRIPT-->", '<script src="/static/page.js"></script>'
    )
    page = page.replace("/*NNLAB_DATA*/null", "null")  # no data inside: the page fetches it
    page = page.replace("<head>\n", '<head>\n<link rel="icon" href="data:,">\n', 1)  # no request
    return page.replace(
        "<body>",
        f'<body data-source="/api/page?ids={query}" data-events="/api/events?ids={query}">',
        1,
    )


def build(runs_dir) -> Starlette:
    """The app over the run store at runs_dir (its Pages as app.state.pages)."""
    pages = Pages(folders.runs_root(runs_dir))
    app = Starlette(routes=routes(pages))
    app.state.pages = pages
    return app


def _page(pages: Pages, ids_of) -> Callable[[Request], Response]:
    """A page of runs (the report's page, its data fetched) for the ids a request names."""

    def endpoint(request: Request) -> Response:
        try:
            ids = ids_of(request)
            pages.check(ids)
        except NnlabError as e:
            return _refusal(e)
        return HTMLResponse(_shell(ids), headers=HEADERS)

    return endpoint


def routes(pages: Pages) -> list[Route]:
    """The app's routes: GET and HEAD only."""

    async def runs_page(request: Request) -> Response:
        return HTMLResponse(report.page_asset("runs.html"), headers=HEADERS)

    async def script(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in SCRIPTS:
            return PlainTextResponse("not found", status_code=404, headers=HEADERS)
        text = report.page_asset(name)
        return Response(text, media_type="text/javascript; charset=utf-8", headers=HEADERS)

    def api_runs(request: Request) -> Response:
        return JSONResponse(pages.runs(), headers=HEADERS)

    def api_page(request: Request) -> Response:
        try:
            ids = _ids(request.query_params.get("ids"))
            pages.check(ids)
            query = request.query_params
            body = pages.page_data(ids, query.get("first") == "1", _since(query.get("since")))
        except report.NothingYet as e:  # a sweep about to start: the page waits, no error
            return JSONResponse({"waiting": str(e)}, headers=HEADERS)
        except NnlabError as e:
            return _refusal(e)
        return Response(body, media_type="application/json", headers=HEADERS)

    async def api_events(request: Request) -> Response:
        try:
            text = request.query_params.get("ids")
            ids = _ids(text) if text else []
            pages.check(ids)
        except NnlabError as e:
            return _refusal(e)
        stream = changes(request, lambda: pages.fingerprint(ids))
        headers = {**HEADERS, "X-Accel-Buffering": "no"}
        return StreamingResponse(stream, media_type="text/event-stream", headers=headers)

    one = _page(pages, lambda request: [folders.validate_id(request.path_params["item"])])
    many = _page(pages, lambda request: _ids(request.query_params.get("ids")))
    read = ["GET", "HEAD"]
    return [
        Route("/", runs_page, methods=read),
        Route("/static/{name}", script, methods=read),
        Route("/run/{item}", one, methods=read),
        Route("/compare", many, methods=read),
        Route("/api/runs", api_runs, methods=read),
        Route("/api/page", api_page, methods=read),
        Route("/api/events", api_events, methods=read),
    ]


def fingerprint(root: Path, ids: list[str]) -> tuple:
    """What a stream watches: the runs or sweeps of a page, or the whole store's listing."""
    if not ids:
        return watch.store_print(root)
    return tuple(watch.item_print(root, i) for i in ids)


async def changes(request: Request, look: Callable[[], tuple], poll: float = POLL_SECONDS):
    """Server-sent events: `changed` each time what the page shows has changed on disk
    (`look()`: its fingerprint), a heartbeat comment now and then; ends when the client
    goes away (nothing is kept)."""
    last = await asyncio.to_thread(look)
    quiet = 0.0
    yield "retry: 2000\n\n"
    while not await request.is_disconnected():
        await asyncio.sleep(poll)
        now = await asyncio.to_thread(look)
        if now != last:
            last, quiet = now, 0.0
            yield "event: changed\ndata: {}\n\n"
        else:
            quiet += poll
            if quiet >= HEARTBEAT_SECONDS:
                quiet = 0.0
                yield ": still here\n\n"
