"""The web app of `nnlab serve` (nnlab.server.app), in process through Starlette's test
client: the pages and their data, read-only routes, hostile ids and paths, the headers,
stored strings as data, and the stream that says when a page's runs changed."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason='the serve extra: pip install -e ".[serve]"')
pytest.importorskip("httpx2", reason="Starlette's test client needs httpx2 (the dev extra)")

from starlette.testclient import TestClient  # noqa: E402

from nnlab.server import app as server  # noqa: E402
from nnlab.store import folders, labels  # noqa: E402
from tests.conftest import FIXTURE_CLS as CLS
from tests.conftest import FIXTURE_STORE, digests  # noqa: E402
from tests.conftest import FIXTURE_VAE as VAE


@pytest.fixture
def client(store):
    return TestClient(server.build(store))


def test_the_runs_page_and_its_data(client, store):
    r = client.get("/")
    assert r.status_code == 200 and '<script src="/static/runs.js">' in r.text
    d = client.get("/api/runs").json()
    assert [x["id"] for x in d["runs"]] == [CLS, VAE]  # newest first
    assert d["runs"][1]["shown"] == "-302.35" and d["runs"][1]["tags"] == []
    assert client.get("/static/runs.js").headers["content-type"].startswith("text/javascript")


def test_a_run_page_is_the_report_page_with_its_data_fetched(client):
    r = client.get(f"/run/{VAE}")
    assert r.status_code == 200
    assert '<script src="/static/page.js"></script>' in r.text and "<script>" not in r.text
    assert f'data-source="/api/page?ids={VAE}"' in r.text
    data = client.get(f"/api/page?ids={VAE}").json()
    assert data["runs"][0]["id"] == VAE and data["runs"][0]["latent"]["kind"] == "density"
    both = client.get(f"/api/page?ids={VAE},{CLS}")
    assert both.status_code == 400 and "different models" in both.text
    assert client.get(f"/compare?ids={VAE}").status_code == 200


def test_a_first_paint_sends_the_newest_snapshot_on_the_whole_axes(client):
    """#36: first=1 sends each recording's newest snapshot alone (the page's first frame),
    on the axes of the whole recording, so nothing moves when the rest arrives."""
    whole = client.get(f"/api/page?ids={VAE}")
    first = client.get(f"/api/page?ids={VAE}&first=1")
    a, b = whole.json()["runs"][0]["latent"], first.json()["runs"][0]["latent"]
    assert len(a["steps"]) > 1 and b["steps"] == a["steps"][-1:]
    assert a["complete"] is True and b["complete"] is False
    assert b["limits"] == a["limits"] and b["mu"]["shape"][0] == 1
    assert len(first.content) < len(whole.content)


def test_a_following_page_gets_the_snapshots_after_its_newest(client):
    """#36: since=STEP sends the snapshots after STEP alone (the page appends them); a step
    the recording does not hold (cut back by a resume) gets the whole; a bad one is a 400."""
    whole = client.get(f"/api/page?ids={VAE}").json()["runs"][0]["latent"]
    steps = whole["steps"]
    middle = steps[len(steps) // 2]
    after = client.get(f"/api/page?ids={VAE}&since={middle}").json()["runs"][0]["latent"]
    assert after["since"] == middle and after["steps"] == [s for s in steps if s > middle]
    assert after["mu"]["shape"][0] == len(after["steps"]) and after["limits"] == whole["limits"]
    cut = client.get(f"/api/page?ids={VAE}&since={steps[-1] + 1}").json()["runs"][0]["latent"]
    assert cut["since"] is None and cut["steps"] == steps
    r = client.get(f"/api/page?ids={VAE}&since=-1")
    assert r.status_code == 400 and "since=" in r.text


@pytest.mark.parametrize(
    "path, code",
    [
        ("/run/nope", 404),
        ("/run/%2e%2e", 400),
        ("/run/..%2f..%2fetc", 404),
        ("/run/a%00b", 400),
        ("/run/" + "x" * 5000, 400),
        ("/api/page?ids=../../etc", 400),
        ("/api/page?ids=nope", 404),
        ("/api/page", 400),
        ("/api/page?ids=" + ",".join(["a"] * 65), 400),
        ("/api/events?ids=%2e%2e", 400),
        ("/static/../app.py", 404),
        ("/static/page.html", 404),
        ("/nothing", 404),
    ],
)
def test_hostile_ids_and_paths_are_refused_with_a_plain_line(client, store, path, code):
    before = digests(store)
    r = client.get(path)
    assert r.status_code == code, (path, r.text)
    assert "Traceback" not in r.text and len(r.text.splitlines()) <= 1
    assert digests(store) == before


def test_a_link_out_of_the_store_is_never_followed(client, store, tmp_path):
    outside = tmp_path / "elsewhere"
    shutil.copytree(FIXTURE_STORE / VAE, outside)
    (store / "linked").symlink_to(outside)
    assert client.get("/run/linked").status_code == 400
    assert client.get("/api/page?ids=linked").status_code == 400
    assert "linked" not in [x["id"] for x in client.get("/api/runs").json()["runs"]]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_only_get_and_head(client, store, method):
    before = digests(store)
    assert client.request(method, "/api/runs").status_code == 405
    assert client.request(method, f"/run/{VAE}").status_code == 405
    assert digests(store) == before
    assert client.head("/api/runs").status_code == 200


def test_every_answer_carries_the_security_headers(client):
    for path in ("/", f"/run/{VAE}", "/api/runs", "/static/page.js", "/run/nope"):
        h = client.get(path).headers
        assert h["content-security-policy"] == server.CSP, path
        assert h["x-content-type-options"] == "nosniff"
    assert (
        "script-src 'self';" in server.CSP and "unsafe-inline" not in server.CSP.split("style")[0]
    )


def test_stored_strings_arrive_as_data(client, store):
    hostile = "</script><script>alert(1)</script><!-- \u2028"
    labels.change(folders.Run(store, VAE), add=["x"], note=hostile)
    r = client.get("/api/runs")
    assert r.headers["content-type"] == "application/json"
    row = next(x for x in r.json()["runs"] if x["id"] == VAE)
    assert row["note"] == hostile  # JSON, read by the page and set as text
    page = client.get(f"/run/{VAE}").text
    assert hostile not in page and "alert" not in page and "NNLAB_DATA" not in page


def test_a_damaged_run_is_refused_alone(client, store):
    (store / VAE / folders.META_FILE).write_text("{")
    assert client.get(f"/api/page?ids={VAE}").status_code == 404
    assert "damaged" in client.get(f"/api/page?ids={VAE}").text
    rows = client.get("/api/runs").json()["runs"]
    assert {r["id"]: r["status"] for r in rows} == {CLS: "finished", VAE: "damaged"}
    assert client.get(f"/api/page?ids={CLS}").status_code == 200


class _Client:
    """A request whose client leaves after `polls` checks."""

    def __init__(self, polls: int):
        self.polls = polls

    async def is_disconnected(self) -> bool:
        self.polls -= 1
        return self.polls < 0


def _events(root: Path, ids: list[str], change, polls: int = 6) -> list[str]:
    async def collect():
        out = []
        look = lambda: server.fingerprint(root, ids)  # noqa: E731
        async for chunk in server.changes(_Client(polls), look, poll=0.01):
            out.append(chunk)
            if len(out) == 1:  # the stream has read the files once: now they change
                change()
        return out

    return asyncio.run(collect())


def test_the_stream_says_changed_when_a_run_s_files_change_and_ends_with_its_client(store):
    got = _events(store, [VAE], lambda: (store / VAE / "metrics.jsonl").open("a").write("\n"))
    assert got[0].startswith("retry:") and got.count("event: changed\ndata: {}\n\n") == 1
    quiet = _events(store, [VAE], lambda: None)
    assert "event: changed\ndata: {}\n\n" not in quiet


def test_the_store_stream_sees_a_new_run_and_a_removed_one(store):
    def add():
        shutil.copytree(FIXTURE_STORE / VAE, store / "vae-new")

    assert "event: changed\ndata: {}\n\n" in _events(store, [], add)
    assert "event: changed\ndata: {}\n\n" in _events(store, [], lambda: shutil.rmtree(store / CLS))


def test_page_data_is_computed_again_only_when_the_run_changed(store):
    pages = server.Pages(store)
    first = pages.page_data([VAE])
    assert pages.page_data([VAE]) is first
    (store / VAE / "metrics.jsonl").open("a").write("\n")
    assert pages.page_data([VAE]) is not first
    assert json.loads(first)["runs"][0]["id"] == VAE  # the JSON body, made once


def test_clients_asking_at_once_share_one_computation(store, monkeypatch):
    """#36's load: 50 clients following a run made 50 computations of its page at each
    change (23 s a request, 1.25 GB); now the first computes, the others wait for it."""
    import threading
    import time

    from nnlab.render import report

    calls = []
    original = report.page_data

    def slow(*args, **kwargs):
        calls.append(1)
        time.sleep(0.3)
        return original(*args, **kwargs)

    monkeypatch.setattr(report, "page_data", slow)
    pages = server.Pages(store)
    bodies = []
    threads = [
        threading.Thread(target=lambda: bodies.append(pages.page_data([VAE]))) for _ in range(12)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(bodies) == 12 and all(b is bodies[0] for b in bodies)


def test_a_sweep_not_started_is_waited_for_not_an_error(client, monkeypatch):
    """A sweep's page opened before its first point starts: a 200 that says so (the page
    waits for the server's word; a 4xx would be a console error in the browser)."""
    from nnlab.render import report

    def nothing(ids, *args, **kwargs):
        raise report.NothingYet(f"{ids[0]}: no run to show yet")

    monkeypatch.setattr(report, "page_data", nothing)
    r = client.get(f"/api/page?ids={VAE}")
    assert r.status_code == 200 and r.json() == {"waiting": f"{VAE}: no run to show yet"}
