"""Where a backbone's pretrained weights live: the Hugging Face / open_clip caches first, then a
download through huggingface_hub (so ``HF_ENDPOINT`` mirrors, ``HF_HUB_OFFLINE`` and proxies apply).

A failure at every step becomes one ``WeightsError`` that says where we looked and how to pass a file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import WeightsError

HUB_CONNECT_TIMEOUT_S = 5
"""Seconds the Hugging Face hub (or the mirror in ``HF_ENDPOINT``) has to answer a metadata request
before a download is given up; ``HF_HUB_ETAG_TIMEOUT`` overrides it."""

OPEN_CLIP_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
TIMM_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class WeightsLocation:
    """The places a backbone's weights may be found.

    Attributes:
        label: what the user sees, e.g. ``vitb16 (ViT-B-16-quickgelu, openai)``.
        repo_id: the Hugging Face repository, or None when the hub has no copy.
        names: the files to try in that repository, safetensors first.
        url: open_clip's direct download URL, looked for (never fetched) in ``~/.cache/clip``.
    """

    label: str
    repo_id: str | None
    names: tuple[str, ...] = OPEN_CLIP_FILES
    url: str = ""


def open_clip_location(label: str, model: str, tag: str) -> WeightsLocation:
    """Where open_clip's pretrained config for ``model`` / ``tag`` keeps its weights."""
    from open_clip.pretrained import get_pretrained_cfg

    cfg: dict[str, Any] = get_pretrained_cfg(model, tag)
    hub = cfg.get("hf_hub", "")
    url = cfg.get("url", "")
    if not hub:
        return WeightsLocation(label, None, url=url)
    repo_id, filename = os.path.split(hub.rstrip("/") + ("/" if hub.endswith("/") else ""))
    return WeightsLocation(label, repo_id, (OPEN_CLIP_FILES[0], filename or OPEN_CLIP_FILES[1]), url)


def cached_weights(location: WeightsLocation, cache_dir: str | None) -> tuple[str | None, list[str]]:
    """Already-downloaded weights, found without touching the network, and where we looked."""
    looked: list[str] = []
    if location.repo_id is not None:
        from huggingface_hub import try_to_load_from_cache

        looked.append(f"the Hugging Face cache ({location.repo_id})")
        for name in location.names:
            found = try_to_load_from_cache(location.repo_id, name, cache_dir=cache_dir)
            if isinstance(found, str):
                return found, looked
    if location.url:
        candidate = Path(cache_dir or os.path.expanduser("~/.cache/clip")) / os.path.basename(location.url)
        looked.append(str(candidate))
        if candidate.is_file():
            return str(candidate), looked
    return None, looked


def offline() -> bool:
    """huggingface_hub reads HF_HUB_OFFLINE when it is imported; a caller may set it later."""
    from huggingface_hub import constants

    return constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def _download_reason(exc: BaseException) -> str:
    """Why a hub download failed, in one line."""
    from huggingface_hub import constants
    from huggingface_hub.errors import OfflineModeIsEnabled

    if isinstance(exc, OfflineModeIsEnabled):
        return "HF_HUB_OFFLINE is set"
    detail = " ".join(str(exc).split())[:300] or type(exc).__name__
    if isinstance(exc, WeightsError):
        return detail
    return f"{constants.ENDPOINT}: {detail}"


def _hub_timeout() -> float:
    from huggingface_hub import constants

    return constants.HF_HUB_ETAG_TIMEOUT if "HF_HUB_ETAG_TIMEOUT" in os.environ else HUB_CONNECT_TIMEOUT_S


def _hub_has(repo_id: str, name: str) -> bool:
    """Whether the hub has the file, from one metadata request without retries; a failure other
    than "not found" (no network, a refused connection, a server error) is raised at once."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import EntryNotFoundError

    try:
        get_hf_file_metadata(hf_hub_url(repo_id, name), timeout=_hub_timeout())
    except EntryNotFoundError:
        return False
    return True


def _download(repo_id: str, names: tuple[str, ...], cache_dir: str | None) -> str:
    """Download the first of ``names`` that the hub has.

    ``_hub_has`` asks first because ``hf_hub_download`` alone retries a failed request six times
    with back-off: a minute or more on a machine without network.

    Raises:
        WeightsError: the hub has none of them.
    """
    from huggingface_hub import constants, hf_hub_download

    name = next((n for n in names if _hub_has(repo_id, n)), None)
    if name is None:
        raise WeightsError(f"{constants.ENDPOINT} has none of {', '.join(names)} in {repo_id}")
    return hf_hub_download(repo_id, name, cache_dir=cache_dir, etag_timeout=_hub_timeout())


def resolve_weights(location: WeightsLocation, cache_dir: str | None = None) -> str:
    """The weights file: the caches first, then a download.

    Raises:
        WeightsError: nothing cached and the download failed, with one line saying why (offline,
            the hub or mirror unreachable, the file missing) and how to pass a file instead.
    """
    found, looked = cached_weights(location, cache_dir)
    if found:
        return found
    where = f"no weights for {location.label}: looked in {' and '.join(looked) or 'no cache'}"
    hint = "pass a local file with `backbone_weights` PATH"
    if location.repo_id is None:
        raise WeightsError(f"{where}; there is no hub download for it; {hint}")
    if offline():
        raise WeightsError(f"{where}; cannot download: HF_HUB_OFFLINE is set; {hint}")
    try:
        return _download(location.repo_id, location.names, cache_dir)
    except Exception as exc:
        raise WeightsError(f"{where}; cannot download: {_download_reason(exc)}; {hint}") from None
