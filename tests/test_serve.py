"""``aigdetect serve`` over real HTTP: one uvicorn server for the session, started as a user would
(``python -m aigdetect serve``), spoken to with httpx and raw sockets; one more for SIGTERM."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import make_tiny_detector, write_image
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from aigdetect import save_detector
from aigdetect.cli import app

REPO = Path(__file__).resolve().parents[1]
TOKEN = "serve-test-token-0123456789abcdef"
MAX_FILES = 40
MAX_QUEUE = 32
MAX_UPLOAD_MB = 1
STARTUP_S = 180.0
"""A guard against a server that never comes up, not a timing assertion."""


@dataclass
class Server:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    tmp: Path
    log: Path
    checkpoint: Path

    def auth(self, token: str = TOKEN) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start(folder: Path, *options: str) -> Server:
    """``aigdetect serve`` in a subprocess, its uploads under ``folder/tmp``; returns once healthy."""
    checkpoint = folder / "tiny.safetensors"
    if not checkpoint.exists():
        save_detector(make_tiny_detector(), checkpoint)
    tmp = folder / "tmp"
    tmp.mkdir(exist_ok=True)
    port = _free_port()
    log = folder / f"serve-{port}.log"
    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmp)}
    command = [sys.executable, "-m", "aigdetect", "serve", "--checkpoint", str(checkpoint), "--port", str(port), *options]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=sink, env=env, cwd=folder)
    server = Server(f"http://127.0.0.1:{port}", port, process, tmp, log, checkpoint)
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}: {log.read_text()}")
        try:
            if httpx.get(f"{server.url}/v1/health").status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise AssertionError(f"the server did not become healthy: {log.read_text()}")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("serve")
    (folder / "token").write_text(TOKEN + "\n")
    running = _start(folder, "--token-file", str(folder / "token"), "--max-files", str(MAX_FILES),
                     "--max-queue", str(MAX_QUEUE), "--max-upload-mb", str(MAX_UPLOAD_MB), "--max-wait-ms", "20")  # fmt: skip
    yield running
    running.process.send_signal(signal.SIGTERM)
    running.process.wait(60)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("images")
    return [
        write_image(folder / "one.png", seed=1),
        write_image(folder / "two.jpg", size=(300, 200), seed=2),
        write_image(folder / "three.webp", size=(64, 96), seed=3),
    ]


def _files(paths: list[Path]) -> list[tuple[str, tuple[str, bytes]]]:
    return [("files", (p.name, p.read_bytes())) for p in paths]


def _post(server: Server, files: list[tuple[str, tuple[str, bytes]]], **kwargs) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/inspect", files=files, headers=server.auth(), timeout=120, **kwargs)


def _one_line(response: httpx.Response) -> str:
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail and "\n" not in detail
    return detail


def _metrics(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{server.url}/metrics", headers=server.auth()).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in text_string_to_metric_families(text)
            for s in family.samples}  # fmt: skip


def _png(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def test_reports_equal_inspect_json_for_the_same_files(server: Server, images: list[Path]) -> None:
    response = _post(server, _files(images))
    assert response.status_code == 200
    served = response.json()
    result = CliRunner().invoke(app, ["inspect", "--json", "--checkpoint", str(server.checkpoint), *map(str, images)])
    assert result.exit_code == 0, result.output
    local = json.loads(result.stdout)
    assert [r["path"] for r in served] == [p.name for p in images]
    for mine, theirs in zip(served, local):
        assert set(mine) == set(theirs)
        assert mine["score"] == pytest.approx(theirs["score"], abs=1e-6)
        same = {k: v for k, v in mine.items() if k not in ("path", "mtime_ns", "score")}
        assert same == {k: v for k, v in theirs.items() if k not in ("path", "mtime_ns", "score")}
    assert [r["sha256"] for r in served] == [hashlib.sha256(p.read_bytes()).hexdigest() for p in images]


def test_thirty_concurrent_requests_each_get_their_own_report(server: Server) -> None:
    bodies = [_png(100 + i) for i in range(30)]

    async def ask() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, headers=server.auth(), timeout=300) as client:
            return await asyncio.gather(*(client.post("/v1/inspect", files=[("files", (f"c{i}.png", body))])
                                          for i, body in enumerate(bodies)))  # fmt: skip

    responses = asyncio.run(ask())
    assert [r.status_code for r in responses] == [200] * 30
    reports = [r.json() for r in responses]
    assert [len(r) for r in reports] == [1] * 30
    assert [r[0]["path"] for r in reports] == [f"c{i}.png" for i in range(30)]
    assert [r[0]["sha256"] for r in reports] == [hashlib.sha256(b).hexdigest() for b in bodies]
    assert all(r[0]["verdict"] is not None for r in reports)
    assert httpx.get(f"{server.url}/v1/health").status_code == 200


def test_unscorable_files_get_an_error_report_in_a_200_answer(server: Server) -> None:
    whole = _png(7)
    files = [("files", ("garbage.jpg", os.urandom(2000))), ("files", ("cut.png", whole[: len(whole) // 2])),
             ("files", ("fine.png", whole)), ("files", ("empty.png", b""))]  # fmt: skip
    response = _post(server, files)
    assert response.status_code == 200
    garbage, cut, fine, empty = response.json()
    for report in (garbage, cut, empty):
        assert report["verdict"] is None and report["score"] is None
        assert report["error"]["reason"] in ("unsupported", "corrupt", "truncated")
    assert "error" not in fine and fine["verdict"] is not None
    assert [garbage["size"], cut["size"], fine["size"], empty["size"]] == [2000, len(whole) // 2, len(whole), 0]


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b'{"files": []}', "application/json", 400),
        (b"--b\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.png\"\r\n\r\nabc", "multipart/form-data; boundary=b", 400),
        (b"--b\r\nContent-Disposition: form-data; name=\"other\"; filename=\"a.png\"\r\n\r\nabc\r\n--b--\r\n",
         "multipart/form-data; boundary=b", 400),
        (b"--b\r\nContent-Disposition: form-data; name=\"files\"\r\n\r\nnot a file\r\n--b--\r\n", "multipart/form-data; boundary=b", 400),
        (b"--b--\r\n", "multipart/form-data; boundary=b", 400),
        (b"garbage without a boundary", "multipart/form-data; boundary=b", 400),
    ],
    ids=["json", "truncated", "other-field", "not-a-file", "no-file", "garbage"],
)
def test_a_request_that_is_not_an_upload_gets_400_and_one_line(server: Server, body: bytes, content_type: str, status: int) -> None:
    response = httpx.post(f"{server.url}/v1/inspect", content=body, headers={**server.auth(), "Content-Type": content_type})
    assert response.status_code == status
    _one_line(response)
    assert httpx.get(f"{server.url}/v1/health").status_code == 200
    assert list(server.tmp.iterdir()) == []


def _raw(port: int, head: bytes, body: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``head`` and ``body`` on a fresh connection, then read the answer until the server closes it."""
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(head + body)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head_text, _, rest = data.partition(b"\r\n\r\n")
    lines = head_text.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, rest


def test_an_oversize_upload_gets_413_before_it_is_read_whole(server: Server) -> None:
    declared = 50 << 20
    head = (f"POST /v1/inspect HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Connection: close\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: {declared}\r\n\r\n").encode()  # fmt: skip
    status, _, body = _raw(server.port, head, b"--b\r\n" + b"x" * 1000)
    assert status == 413
    assert "over the limit" in json.loads(body)["detail"]

    cap = MAX_UPLOAD_MB << 20
    part = b'--b\r\nContent-Disposition: form-data; name="files"; filename="big.png"\r\n\r\n' + b"x" * (cap + 1)
    chunked = f"{len(part):x}\r\n".encode() + part + b"\r\n0\r\n\r\n"
    head = (f"POST /v1/inspect HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Connection: close\r\nContent-Type: multipart/form-data; boundary=b\r\nTransfer-Encoding: chunked\r\n\r\n").encode()  # fmt: skip
    status, _, body = _raw(server.port, head, chunked)
    assert status == 413
    assert list(server.tmp.iterdir()) == []

    too_many = [("files", (f"{i}.png", b"x")) for i in range(MAX_FILES + 1)]
    response = _post(server, too_many)
    assert response.status_code == 413
    assert f"more than {MAX_FILES} files" in _one_line(response)
    assert httpx.get(f"{server.url}/v1/health").status_code == 200


def test_a_wrong_or_missing_token_gets_401(server: Server, images: list[Path]) -> None:
    for headers in ({}, server.auth("wrong-token-wrong-token-wrong"), {"Authorization": TOKEN}, server.auth(TOKEN + "x")):
        response = httpx.post(f"{server.url}/v1/inspect", files=_files(images[:1]), headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        _one_line(response)
        assert httpx.get(f"{server.url}/v1/info", headers=headers).status_code == 401
        assert httpx.get(f"{server.url}/metrics", headers=headers).status_code == 401
    assert httpx.get(f"{server.url}/v1/health").status_code == 200
    info = httpx.get(f"{server.url}/v1/info", headers=server.auth()).json()
    assert info["detector"].startswith("mole-") and info["threshold"] == 0.5 and len(info["bands"]) == 2
    assert info["limits"]["max_files"] == MAX_FILES and info["c2pa_trust"] is None


def test_a_request_that_does_not_fit_the_queue_gets_429_with_retry_after(server: Server) -> None:
    files = [("files", (f"{i}.png", _png(i))) for i in range(MAX_QUEUE + 1)]
    response = _post(server, files)
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) >= 1
    assert "queue is full" in _one_line(response)
    assert _post(server, files[:MAX_QUEUE]).status_code == 200


def test_metrics_count_requests_errors_batches_and_verdicts(server: Server) -> None:
    before = _metrics(server)
    assert httpx.post(f"{server.url}/v1/inspect", files=[("files", ("a.png", _png(1)))]).status_code == 401
    ok = _post(server, [("files", ("a.png", _png(1))), ("files", ("b.txt", b"not an image"))])
    after = _metrics(server)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    verdict = ok.json()[0]["verdict"]
    reason = ok.json()[1]["error"]["reason"]
    assert delta("aigdetect_request_errors_total", reason="unauthorized") == 1
    assert delta("aigdetect_requests_total", endpoint="/v1/inspect", status="200") == 1
    assert delta("aigdetect_requests_total", endpoint="/v1/inspect", status="401") == 1
    assert delta("aigdetect_verdicts_total", verdict=verdict) == 1
    assert delta("aigdetect_file_errors_total", reason=reason) == 1
    assert delta("aigdetect_inspect_seconds_count") == 1
    assert delta("aigdetect_batch_files_sum") == 2 and delta("aigdetect_batch_files_count") == 1
    assert after[("aigdetect_queue_files", ())] == 0 and after[("aigdetect_detector_loaded", ())] == 1


def test_uploads_are_removed_and_the_schema_is_served_without_cdn_docs(server: Server) -> None:
    assert _post(server, [("files", ("a.png", _png(3)))]).status_code == 200
    assert list(server.tmp.iterdir()) == []
    schema = httpx.get(f"{server.url}/openapi.json").json()
    body = schema["paths"]["/v1/inspect"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["properties"]["files"]["type"] == "array"
    assert httpx.get(f"{server.url}/docs").status_code == 404
    assert httpx.get(f"{server.url}/redoc").status_code == 404


def test_no_cors_and_other_origins_are_refused(server: Server) -> None:
    response = httpx.post(f"{server.url}/v1/inspect", files=[("files", ("a.png", _png(4)))],
                          headers={**server.auth(), "Origin": "https://evil.example"})  # fmt: skip
    assert response.status_code == 403
    assert not any(k.lower().startswith("access-control-") for k in response.headers)
    preflight = httpx.options(f"{server.url}/v1/inspect", headers={"Origin": "https://evil.example",
                                                                  "Access-Control-Request-Method": "POST"})  # fmt: skip
    assert not any(k.lower().startswith("access-control-") for k in preflight.headers)
    page = httpx.get(f"{server.url}/")
    assert "script-src 'sha256-" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


def test_sigterm_finishes_the_request_in_flight_then_exits(tmp_path: Path) -> None:
    running = _start(tmp_path)
    try:
        png = _png(5)
        part = b'--b\r\nContent-Disposition: form-data; name="files"; filename="late.png"\r\n\r\n' + png + b"\r\n--b--\r\n"
        head = (f"POST /v1/inspect HTTP/1.1\r\nHost: 127.0.0.1:{running.port}\r\n"
                f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {len(part)}\r\n\r\n").encode()  # fmt: skip
        with socket.create_connection(("127.0.0.1", running.port)) as conn:
            conn.sendall(head + part[:100])
            while _metrics(running).get(("aigdetect_inspect_in_flight", ())) != 1:
                time.sleep(0.05)
            running.process.send_signal(signal.SIGTERM)
            while True:
                try:
                    socket.create_connection(("127.0.0.1", running.port)).close()
                except ConnectionRefusedError:
                    break
                time.sleep(0.05)
            conn.sendall(part[100:])
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
        status_line, _, rest = data.partition(b"\r\n")
        assert status_line.split()[1] == b"200"
        report = json.loads(rest.partition(b"\r\n\r\n")[2])[0]
        assert report["path"] == "late.png" and report["sha256"] == hashlib.sha256(png).hexdigest()
        assert running.process.wait(60) == 0
        assert "stopped" in running.log.read_text()
    finally:
        if running.process.poll() is None:
            running.process.kill()
            running.process.wait()


def test_health_is_503_until_the_detector_is_loaded_then_200(tiny_checkpoint: Path) -> None:
    from aigdetect.models.choice import DetectorChoice
    from aigdetect.serve.app import create_app
    from aigdetect.serve.config import ServeConfig
    from aigdetect.serve.service import ScoringSettings, Service

    service = Service(ServeConfig(), ScoringSettings(choice=DetectorChoice(checkpoint=str(tiny_checkpoint))))

    async def ask() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=create_app(service))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            return [await client.get("/v1/health"), await client.post("/v1/inspect", files=[("files", ("a.png", _png(1)))])]

    try:
        health, inspect = asyncio.run(ask())
        assert (health.status_code, health.json()) == (503, {"status": "loading"})
        assert inspect.status_code == 503 and "still loading" in _one_line(inspect)
        service.load()
        health, inspect = asyncio.run(ask())
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        assert inspect.status_code == 200 and inspect.json()[0]["path"] == "a.png"
    finally:
        service.close()


def test_a_decoder_crash_costs_that_file_only(tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aigdetect.engine.reading import FileReader
    from aigdetect.engine.runtime import RuntimeConfig
    from aigdetect.models.choice import DetectorChoice
    from aigdetect.serve.app import create_app
    from aigdetect.serve.config import ServeConfig
    from aigdetect.serve.service import ScoringSettings, Service

    decode = FileReader._decode

    def crash_on_poison(self, handle, record):
        if handle.read(6) == b"POISON":
            os.kill(os.getpid(), signal.SIGKILL)
        handle.seek(0)
        return decode(self, handle, record)

    monkeypatch.setattr(FileReader, "_decode", crash_on_poison)
    scoring = ScoringSettings(choice=DetectorChoice(checkpoint=str(tiny_checkpoint)), runtime=RuntimeConfig(device="cpu", workers=2))
    service = Service(ServeConfig(), scoring)
    service.load()
    files = [("files", ("a.png", _png(1))), ("files", ("poison.png", b"POISON" + _png(2))), ("files", ("c.png", _png(3)))]

    async def ask() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=create_app(service))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", timeout=120) as client:
            return [await client.post("/v1/inspect", files=files), await client.post("/v1/inspect", files=files[:1])]

    try:
        crashed, after = asyncio.run(ask())
    finally:
        service.close()
    assert crashed.status_code == 200
    a, poison, c = crashed.json()
    assert poison["error"] == {"reason": "crashed", "detail": "the decoder crashed (killed by SIGKILL)"}
    assert a["verdict"] is not None and c["verdict"] is not None
    assert after.status_code == 200 and after.json()[0]["score"] == a["score"]


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        (b"photo.jpg", "photo.jpg"),
        (b"../../etc/passwd", "passwd"),
        (b"C:\\Users\\me\\shot.png", "shot.png"),
        (b"a\x00b\nc\x1b[31m.png", "abc[31m.png"),
        ("caf\u00e9\u202e.png".encode(), "caf\u00e9.png"),
        (b"<img src=x onerror=alert(1)>.png", "<img src=x onerror=alert(1)>.png"),
        (b"..", "upload-3"),
        (b"dir/", "upload-3"),
        (b"\xff\xfe.png", "\ufffd\ufffd.png"),
        (b"x" * 400, "x" * 255),
    ],
)
def test_file_names_lose_their_folders_and_control_characters_and_stay_text(raw: bytes, name: str) -> None:
    from aigdetect.serve.uploads import clean_name

    assert clean_name(raw, 2) == name


def test_uploads_land_in_a_private_folder_and_an_oversize_chunked_body_is_stopped(tmp_path: Path, monkeypatch) -> None:
    from aigdetect.serve.refusals import Refused
    from aigdetect.serve.uploads import UploadLimits, receive_uploads

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    body = b'--b\r\nContent-Disposition: form-data; name="files"; filename="../a.png"\r\n\r\nPNGDATA\r\n--b--\r\n'
    sent: list[int] = []

    async def chunks(data: bytes, size: int):
        for start in range(0, len(data), size):
            sent.append(start)
            yield data[start : start + size]

    uploads = asyncio.run(receive_uploads("multipart/form-data; boundary=b", None, chunks(body, 7), UploadLimits(len(body), 4, 5.0)))
    assert uploads.names == ["a.png"] and Path(uploads.paths[0]).read_bytes() == b"PNGDATA"
    assert os.stat(uploads.folder).st_mode & 0o777 == 0o700
    assert os.stat(uploads.paths[0]).st_mode & 0o777 == 0o600
    uploads.remove()
    assert list(tmp_path.iterdir()) == []

    sent.clear()
    huge = body[:-8] + b"x" * 1000 + body[-8:]
    with pytest.raises(Refused) as refused:
        asyncio.run(receive_uploads("multipart/form-data; boundary=b", None, chunks(huge, 100), UploadLimits(300, 4, 5.0)))
    assert refused.value.status == 413
    assert len(sent) == 4  # the fourth chunk passes 300 bytes: nothing after it is read
    assert list(tmp_path.iterdir()) == []


def test_a_client_that_goes_silent_gets_408_and_its_upload_is_dropped(tmp_path: Path, monkeypatch) -> None:
    from aigdetect.serve.refusals import Refused
    from aigdetect.serve.uploads import UploadLimits, receive_uploads

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))

    async def stalls():
        yield b'--b\r\nContent-Disposition: form-data; name="files"; filename="a.png"\r\n\r\nPNG'
        await asyncio.Event().wait()  # never set: the client sends nothing more
        yield b""

    with pytest.raises(Refused) as refused:
        asyncio.run(receive_uploads("multipart/form-data; boundary=b", None, stalls(), UploadLimits(1 << 20, 4, 0.05)))
    assert refused.value.status == 408
    assert list(tmp_path.iterdir()) == []


def test_listening_beyond_loopback_needs_a_token_or_no_token(tmp_path: Path) -> None:
    from aigdetect.errors import ConfigError
    from aigdetect.serve.config import ServeConfig

    with pytest.raises(ConfigError, match="token_file"):
        ServeConfig(host="0.0.0.0")
    assert ServeConfig(host="0.0.0.0", no_token=True).token is None
    assert ServeConfig(host="::1").token is None
    (tmp_path / "short").write_text("abc\n")
    with pytest.raises(ConfigError, match="at least 16"):
        ServeConfig(host="0.0.0.0", token_file=str(tmp_path / "short"))
    (tmp_path / "good").write_text(TOKEN + "\n")
    assert ServeConfig(host="0.0.0.0", token_file=str(tmp_path / "good")).token == TOKEN
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "--token-file" in result.output and "--no-token" in result.output


HOSTILE = "<img src=x onerror=alert(1)>\u202e.png"


def test_the_page_shows_the_verdict_of_a_dropped_file_and_keeps_a_hostile_name_as_text(server: Server) -> None:
    from report_support import launch_browser

    from aigdetect.report.scan_page import LABELS

    png = _png(11)
    expected = _post(server, [("files", ("same.png", png))]).json()[0]
    playwright, browser = launch_browser()
    try:
        page = browser.new_context().new_page()
        requests: list[str] = []
        dialogs: list[str] = []
        errors: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.on("console", lambda message: errors.append(message.text) if message.type in ("error", "warning") else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{server.url}/")
        page.wait_for_selector("body[data-ready]")
        page.fill("#token", TOKEN)
        page.set_input_files("#files", files=[{"name": HOSTILE, "mimeType": "image/png", "buffer": png}])
        page.wait_for_selector('body[data-done="1"]')
        article = page.locator("article.result")
        assert article.get_attribute("data-verdict") == expected["verdict"]
        assert article.locator(".badge").inner_text() == LABELS[expected["verdict"]]
        assert article.locator("h2").inner_text() == "<img src=x onerror=alert(1)>.png"
        assert article.locator(".gauge .value").inner_text() == f"{expected['score']:.4f}"
        assert article.locator("ul.reasons li").all_inner_texts() == expected["reasons"]
        assert article.locator(".big img").count() == 1
        assert page.locator("img[src=x]").count() == 0
        assert dialogs == [] and errors == []
        assert all(u.startswith(server.url) or u.startswith("data:") for u in requests)

        page.fill("#token", "wrong-token-wrong-token")
        page.set_input_files("#files", files=[{"name": "second.png", "mimeType": "image/png", "buffer": png}])
        page.wait_for_selector('body[data-done="2"]')
        refused = page.locator("article.result").first
        assert refused.get_attribute("data-verdict") == "refused"
        assert "401" in refused.inner_text()
    finally:
        browser.close()
        playwright.stop()


class _HeldScorer:
    """A scorer that records each batch and holds it until ``release`` is set."""

    def __init__(self) -> None:
        import threading

        self.release = threading.Event()
        self.batches: list[list[str]] = []

    def __call__(self, paths: list[str]) -> list[dict]:
        self.batches.append(paths)
        self.release.wait()
        return [{"path": p} for p in paths]

    def holding(self) -> None:
        """Return once the scorer has taken its first batch (and holds it)."""
        while not self.batches:
            time.sleep(0.01)


def test_a_busy_scorer_fills_the_queue_and_the_next_request_is_refused_until_it_drains() -> None:
    from aigdetect.serve.batching import BatchQueue
    from aigdetect.serve.refusals import Refused

    score = _HeldScorer()
    queue = BatchQueue(score, max_batch=4, max_wait_s=0.0, max_queue=3)
    try:
        first = queue.submit(["a"])
        score.holding()
        waiting = queue.submit(["b", "c", "d"])
        with pytest.raises(Refused) as refused:
            queue.submit(["e"])
        assert refused.value.status == 429 and int(refused.value.headers["Retry-After"]) >= 1
        score.release.set()
        assert first.result(60) == [{"path": "a"}]
        assert waiting.result(60) == [{"path": "b"}, {"path": "c"}, {"path": "d"}]
        assert queue.submit(["e"]).result(60) == [{"path": "e"}]
        assert score.batches == [["a"], ["b", "c", "d"], ["e"]]
    finally:
        score.release.set()
        queue.close()


def test_requests_waiting_together_are_scored_in_one_batch_of_at_most_max_batch_files() -> None:
    from aigdetect.serve.batching import BatchQueue

    score = _HeldScorer()
    queue = BatchQueue(score, max_batch=4, max_wait_s=0.0, max_queue=16)
    try:
        futures = [queue.submit(["a"])]
        score.holding()
        futures += [queue.submit([name]) for name in "bcdef"] + [queue.submit(["g", "h"])]
        score.release.set()
        assert [f.result(60) for f in futures] == [[{"path": p} for p in names] for names in ["a", *"bcdef", "gh"]]
        assert score.batches == [["a"], ["b", "c", "d", "e"], ["f", "g", "h"]]
    finally:
        score.release.set()
        queue.close()


def test_a_port_in_use_is_one_line_and_exit_2(tiny_checkpoint: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["serve", "--checkpoint", str(tiny_checkpoint), "--port", str(port)])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
