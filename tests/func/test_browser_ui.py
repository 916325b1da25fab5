"""The MLflow UI, checked in a real headless Chromium over a store produced by the demo pipeline.

The store is the one of the session-wide ``demo_project`` fixture (tests/func/conftest.py: the project copied into
a temporary git repo and `dvc repro` run). One ``mlflow server --workers 1`` serves it for the whole test session
(``shared_demo_server`` is also used by test_webhook_e2e.py, which is why the server carries the webhook settings). Chromium (Debian
``chromium``; installed by .ci/install-chromium.sh when missing) opens the run page and the report artifact;
the report is read inside MLflow's artifact viewer through chromedriver (WebDriver), because the UI renders HTML
artifacts in a ``blob:`` iframe that ``--dump-dom`` does not include (and ``/get-artifact`` answers with
``Content-Disposition: attachment``). Screenshots and DOM dumps are kept under ``test-artifacts/browser/``.
"""

from __future__ import annotations

import atexit
import base64
import html
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.func

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
FERNET_KEY = "Y3VyYXRpb24tZnVuY3Rpb25hbC10ZXN0cy1rZXktMzI="  # fixed, so webhook secrets survive a restart
SERVER_START_TIMEOUT_S = 240
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic", "--window-size=1400,1000", "--virtual-time-budget=15000",
]


@dataclass
class DemoServer:
    """An MLflow server over the demo copy's store, and what the demo run left in it."""

    url: str
    project: Path
    experiment_id: str
    report_run_id: str
    report_run_name: str
    metrics: dict[str, float]
    process: subprocess.Popen


_SHARED: dict[str, DemoServer] = {}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited {process.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1.0)
    raise RuntimeError(f"mlflow server not healthy after {SERVER_START_TIMEOUT_S} s: {log.read_text()[-2000:]}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def shared_demo_server(project: Path) -> DemoServer:
    """Serve the demo project's embedded store (once per test session; stopped at exit)."""
    if "server" in _SHARED:
        return _SHARED["server"]
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "CURATION_"))}
    env.update({"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
                "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https", "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
                "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": FERNET_KEY, "MLFLOW_WEBHOOK_CACHE_TTL": "1"})
    # exactly what a person runs: `curate ui` in the project serves its embedded store
    argv = [str(Path(sys.executable).with_name("curate")), "ui", "--port", str(port)]
    log = project / "mlflow-server.log"
    process = subprocess.Popen(argv, cwd=project, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                               start_new_session=True)
    atexit.register(_stop, process)
    _wait_healthy(url, process, log)

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=url)
    [run] = client.search_runs([client.get_experiment_by_name("curation").experiment_id],
                               filter_string="tags.`curation.stage` = 'build_report'", max_results=1,
                               order_by=["attributes.start_time DESC"])
    _SHARED["server"] = DemoServer(url=url, project=project, experiment_id=run.info.experiment_id,
                                   report_run_id=run.info.run_id, report_run_name=run.info.run_name,
                                   metrics=dict(run.data.metrics), process=process)
    return _SHARED["server"]


def chromium() -> str:
    """Path of Debian's chromium, installing it with .ci/install-chromium.sh when missing."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        install = subprocess.run(["bash", str(ROOT / ".ci" / "install-chromium.sh")], check=False,
                                 capture_output=True, text=True, timeout=600)
        found = shutil.which("chromium")
        if not found:
            pytest.skip(f"chromium missing and .ci/install-chromium.sh failed: {install.stderr.strip()[-300:]}")
    return found


def render(url: str, name: str) -> str:
    """Open ``url`` in headless Chromium with a fresh profile; keep a screenshot and the DOM; return the DOM."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    profile = ARTIFACTS / f".profile-{name}"
    shutil.rmtree(profile, ignore_errors=True)
    shot = ARTIFACTS / f"{name}.png"
    shot.unlink(missing_ok=True)
    done = subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}",
                           "--dump-dom", url], check=False, capture_output=True, text=True, timeout=180)
    shutil.rmtree(profile, ignore_errors=True)
    (ARTIFACTS / f"{name}.html").write_text(done.stdout)
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.exists() and shot.stat().st_size > 10_000, "no screenshot written"
    return done.stdout


def visible_text(dom: str) -> str:
    """Text content of a DOM dump (scripts, styles and tags removed, entities decoded)."""
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.DOTALL | re.IGNORECASE)
    return html.unescape(re.sub(r"<[^>]+>", " ", dom))


class WebDriver:
    """Minimal W3C WebDriver client over Debian's chromedriver (stdlib HTTP only), for what --dump-dom cannot
    see: the MLflow UI renders an HTML artifact inside a sandboxed ``blob:`` iframe."""

    ELEMENT = "element-6066-11e4-a52e-4f735466cecf"

    def __init__(self, profile: Path) -> None:
        driver = shutil.which("chromedriver")
        if not driver:
            chromium()  # installs chromium + chromium-driver
            driver = shutil.which("chromedriver") or pytest.skip("chromedriver missing after install")
        self.port = _free_port()
        self.process = subprocess.Popen([driver, f"--port={self.port}"], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        flags = [f for f in CHROMIUM_FLAGS if not f.startswith("--virtual-time-budget")]
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": chromium(), "args": [*flags, f"--user-data-dir={profile}"]}}}}
        deadline = time.monotonic() + 60
        while True:
            try:
                self.session = self._call("POST", "/session", caps)["sessionId"]
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())["value"]

    def cmd(self, method: str, path: str, body: dict | None = None) -> dict:
        return self._call(method, f"/session/{self.session}{path}", body)

    def wait_for(self, css: str, timeout_s: float = 90) -> str:
        """Id of the first element matching ``css`` once it exists (the React app renders asynchronously)."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = self.cmd("POST", "/elements", {"using": "css selector", "value": css})
            if found:
                return found[0][self.ELEMENT]
            if time.monotonic() > deadline:
                raise AssertionError(f"no element {css!r} after {timeout_s} s")
            time.sleep(0.5)

    def screenshot(self, dest: Path) -> None:
        dest.write_bytes(base64.b64decode(self.cmd("GET", "/screenshot")))

    def quit(self) -> None:
        try:
            self.cmd("DELETE", "")
        finally:
            _stop(self.process)


@pytest.fixture(scope="session")
def demo_server(demo_project: Path) -> DemoServer:
    """The MLflow server over the store of the lead's session-wide ``demo_project`` (a real `dvc repro`)."""
    return shared_demo_server(demo_project)


def test_run_page_shows_run_name_and_metric(demo_server: DemoServer) -> None:
    url = f"{demo_server.url}/#/experiments/{demo_server.experiment_id}/runs/{demo_server.report_run_id}"
    text = visible_text(render(url, "run_page"))
    assert demo_server.report_run_name.startswith("build_report@")
    assert demo_server.report_run_name in text
    assert "stages_reported" in text
    assert f"stages_reported {demo_server.metrics['stages_reported']:g}" in " ".join(text.split())


def test_report_artifact_shows_heading_and_links_to_stage_runs(demo_server: DemoServer) -> None:
    """The report as a person opens it: the run's Artifacts tab, the HTML rendered in MLflow's iframe."""
    run_page = f"#/experiments/{demo_server.experiment_id}/runs/{demo_server.report_run_id}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    profile = ARTIFACTS / ".profile-report"
    shutil.rmtree(profile, ignore_errors=True)
    browser = WebDriver(profile)
    try:
        browser.cmd("POST", "/url", {"url": f"{demo_server.url}/{run_page}/artifacts/pipeline.html"})
        frame = browser.wait_for("iframe.mlflow-html-iframe")
        browser.cmd("POST", "/frame", {"id": {WebDriver.ELEMENT: frame}})
        heading = browser.wait_for("h1")
        assert browser.cmd("GET", f"/element/{heading}/text") == "Curation pipeline report"
        assert browser.cmd("GET", f"/element/{heading}/displayed") is True
        links = [browser.cmd("GET", f"/element/{e[WebDriver.ELEMENT]}/attribute/href") for e in
                 browser.cmd("POST", "/elements", {"using": "css selector", "value": "a[href]"})]
        images = browser.cmd("POST", "/elements", {"using": "css selector", "value": "img"})
        browser.cmd("POST", "/frame/parent", {})
        browser.screenshot(ARTIFACTS / "report.png")
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)
    assert any(link.endswith(f"/{run_page}") for link in links), f"no link to the build_report run page: {links}"
    assert len(links) >= 5, "fewer stage-run links than stages before build_report"
    assert images, "no embedded plots"


def _artifact_files(client: object, run_id: str, path: str | None = None) -> list[str]:
    files: list[str] = []
    for item in client.list_artifacts(run_id, path):
        files.extend(_artifact_files(client, run_id, item.path) if item.is_dir else [item.path])
    return files


def test_stage_reports_are_self_contained_with_pngs_beside_them(demo_server: DemoServer) -> None:
    """Every HTML report a demo stage logged embeds its plots (no external src) and has PNG plots beside it."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=demo_server.url)
    checked: dict[str, list[str]] = {}
    for run in client.search_runs([demo_server.experiment_id], filter_string="attributes.status = 'FINISHED'"):
        stage = run.data.tags.get("curation.stage")
        files = _artifact_files(client, run.info.run_id)
        reports = [f for f in files if f.endswith(".html")]
        if not stage or not reports:
            continue
        root = Path(run.info.artifact_uri.removeprefix("file://"))
        for report in reports:
            text = (root / report).read_text()
            assert "<h1>" in text, f"{stage}: {report} has no heading"
            external = re.findall(r'<(?:script|img|link|iframe)\b[^>]*?(?:src|href)="(?!data:)([^"]+)"', text)
            assert not external, f"{stage}: {report} is not self-contained: {external[:3]}"
        if run.data.tags.get("curation.report") != "summary":  # stages without plots get a metrics summary
            assert any(f.endswith(".png") for f in files), f"{stage}: report logged without PNG plots beside it"
        checked[stage] = reports
    assert "pipeline.html" in checked.get("build_report", []), checked
