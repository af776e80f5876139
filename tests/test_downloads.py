"""Backbone downloads go through huggingface_hub, so HF_ENDPOINT mirrors, offline mode and proxies
apply; failures are one line, after one request. A local HTTP server stands in for the mirror,
serving a tiny open_clip checkpoint under the hub's URL layout (HEAD and GET on
``/{repo_id}/resolve/{revision}/{filename}`` with the commit, ETag and length headers)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from conftest import TINY_CONFIG
from safetensors.torch import load_file, save_file

from aigdetect import create_detector

pytestmark = pytest.mark.slow  # each test starts a Python that imports torch and open_clip

REPO = "aigdetect-test/tiny-clip"
WEIGHTS_PATH = f"/{REPO}/resolve/main/open_clip_model.safetensors"
COMMIT = "0123456789abcdef0123456789abcdef01234567"

# Run in a fresh process, because huggingface_hub reads HF_ENDPOINT and HF_HUB_OFFLINE when it is
# imported: registers the tiny config as open_clip model "tiny" with pretrained tag "hubtest" on the
# test repository, and "tinyhub" as an aigdetect backbone, then loads it with weights resolved
# through the caches and the hub.
DRIVER = """
import json, sys
import open_clip
from open_clip import pretrained
from safetensors.torch import save_file
from aigdetect.errors import WeightsError
from aigdetect.models import zoo
from aigdetect.models.backbones import load_backbone, resolve_backbone

config, cache, out = sys.argv[1:4]
open_clip.add_model_config(config)
pretrained._PRETRAINED["tiny"] = {"hubtest": pretrained._pcfg(hf_hub="%s/")}
zoo.BACKBONES._entries["tinyhub"] = zoo.BackboneSpec("tinyhub", "tiny", "tiny", "hubtest", "test backbone")
try:
    visual = load_backbone(resolve_backbone("tinyhub"), cache_dir=cache)
except WeightsError as exc:
    print(json.dumps({"error": str(exc)}))
    sys.exit(3)
save_file({k: v.contiguous() for k, v in visual.state_dict().items()}, out)
""" % REPO


class Mirror(ThreadingHTTPServer):
    """A hub mirror on 127.0.0.1 that records every request; ``status`` other than 200 answers
    every request with that error, as a failing mirror would."""

    def __init__(self, payload: bytes) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.payload = payload
        self.status = 200
        self.requests: list[tuple[str, str]] = []
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def file_requests(self) -> list[tuple[str, str]]:
        """Requests for repository files (huggingface_hub also asks ``/api/...`` for its telemetry)."""
        return [(method, path) for method, path in self.requests if "/resolve/" in path]

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join()


class _Handler(BaseHTTPRequestHandler):
    server: Mirror

    def _answer(self, body: bool) -> None:
        self.server.requests.append((self.command, self.path))
        if self.server.status != 200 or self.path != WEIGHTS_PATH:
            status = self.server.status if self.server.status != 200 else 404
            self.send_response(status)
            if status == 404:
                self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        payload = self.server.payload
        self.send_response(200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{hashlib.sha256(payload).hexdigest()}"')
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if body:
            self.wfile.write(payload)

    def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
        self._answer(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(body=True)

    def log_message(self, format: str, *args) -> None:
        return


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> tuple[dict[str, torch.Tensor], bytes]:
    """An open_clip-format checkpoint of the tiny ViT (``visual.*`` keys), as the mirror serves it."""
    visual = create_detector(TINY_CONFIG, backbone_weights="none", seed=11).backbone_state_dict()
    path = tmp_path_factory.mktemp("served") / "open_clip_model.safetensors"
    save_file({f"visual.{k}": v for k, v in visual.items()}, str(path))
    return visual, path.read_bytes()


@pytest.fixture()
def mirror(served):
    server = Mirror(served[1])
    yield server
    if server.thread.is_alive():
        server.stop()


def _load(tmp_path: Path, endpoint: str, **env: str) -> tuple[int, dict | None]:
    cache, out = tmp_path / "cache", tmp_path / "loaded.safetensors"
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HTTP", "HTTPS", "http", "https", "NO_PROXY"))},
        "HF_ENDPOINT": endpoint,
        "HF_HOME": str(tmp_path / "hf-home"),
        **env,
    }
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, str(TINY_CONFIG), str(cache), str(out)],
        env=environment, capture_output=True, text=True, cwd=Path(__file__).parent,
    )
    assert done.returncode in (0, 3), done.stderr
    return done.returncode, json.loads(done.stdout) if done.returncode == 3 else None


def test_weights_download_from_the_mirror_in_hf_endpoint_and_load(tmp_path, mirror, served):
    code, _ = _load(tmp_path, mirror.url)
    assert code == 0
    loaded = load_file(str(tmp_path / "loaded.safetensors"))
    expected = served[0]
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(loaded[k], expected[k]) for k in expected)
    assert mirror.file_requests().count(("GET", WEIGHTS_PATH)) == 1
    served_again = len(mirror.file_requests())
    assert _load(tmp_path, mirror.url)[0] == 0 and len(mirror.file_requests()) == served_again  # from the cache now


def test_a_stopped_mirror_fails_in_one_line(tmp_path, mirror):
    mirror.stop()
    code, answer = _load(tmp_path, mirror.url)
    message = answer["error"]
    assert code == 3 and "\n" not in message
    assert message.startswith("no weights for tinyhub (tiny, hubtest): looked in the Hugging Face cache (aigdetect-test/tiny-clip)")
    assert f"cannot download: {mirror.url}: " in message and message.endswith("pass a local file with `backbone_weights` PATH")


def test_a_failing_mirror_is_asked_once_not_retried(tmp_path, mirror):
    mirror.status = 503
    code, answer = _load(tmp_path, mirror.url)
    assert code == 3 and "503" in answer["error"] and "\n" not in answer["error"]
    assert mirror.file_requests() == [("HEAD", WEIGHTS_PATH)]


def test_offline_mode_sends_no_request(tmp_path, mirror):
    code, answer = _load(tmp_path, mirror.url, HF_HUB_OFFLINE="1")
    assert code == 3 and "cannot download: HF_HUB_OFFLINE is set" in answer["error"]
    assert mirror.requests == []
