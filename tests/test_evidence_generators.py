"""Generator metadata as the front ends really write it, in files made here the way each tool makes them.

ComfyUI (GPL-3.0, so none of its files are copied): ``comfy_api/latest/_ui.py`` at commit
8ede2b6fa9a12da8268aeddb0546217fa1888f16, ``ImageSaveHelper``:

- ``_create_webp_metadata`` (used by ``save_animated_webp``, the ``SaveAnimatedWEBP`` node of
  ``comfy_extras/nodes_images.py``, which also saves single frames): ``exif = image.getexif()``, then
  ``exif[0x0110] = "prompt:" + json.dumps(prompt)`` and, for each ``extra_pnginfo`` entry (the
  ``workflow`` first), ``exif[tag] = key + ":" + json.dumps(value)`` with ``tag`` from 0x010F downwards;
  saved with ``save_all=True, exif=exif, lossless=..., quality=..., method=...``.
- ``_create_animated_png_metadata`` (``SaveAnimatedPNG``): ``PngInfo.add(b"comf", key + b"\\0" + json,
  after_idat=True)`` for ``prompt`` and each extra entry.
- ``_create_png_metadata`` (``SaveImage``): ``tEXt`` chunks ``prompt`` and ``workflow``.

Fooocus (``modules/meta_parser.py``, ``modules/private_logger.py``): PNG ``parameters`` (its JSON scheme,
``json.dumps(dict(sorted(...)))`` with ``full_prompt``, ``base_model``, ``version``; or the
AUTOMATIC1111 text scheme ending in ``Version: Fooocus v...``) plus ``fooocus_scheme``; JPEG and WebP
through ``get_exif``: ``exif[0x9286]`` (UserComment, in the first IFD), ``exif[0x0131]`` Software
``Fooocus v...``, ``exif[0x927C]`` the scheme. SwarmUI (its ``docs/Image Metadata Format.md``):
``parameters`` iTXt with JSON under ``sui_image_params`` in PNG, the same JSON in UserComment in JPEG.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from evidence_files import A1111, encode, exif_block, png_with_text, small_photo, write
from PIL import Image, PngImagePlugin

from aigdetect.evidence import EvidenceConfig, Finding, collect_evidence

FLUX_PROMPT = {
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "flux1-dev-fp8.safetensors"}},
    "3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 20, "model": ["4", 0]}},
}
WAN_PROMPT = {
    "37": {"class_type": "UNETLoader", "inputs": {"unet_name": "wan2.1_t2v_1.3B_fp16.safetensors", "weight_dtype": "default"}},
    "28": {"class_type": "SaveAnimatedWEBP", "inputs": {"fps": 16, "lossless": False, "quality": 90, "method": "default"}},
}
WORKFLOW = {"nodes": [{"id": 28, "type": "SaveAnimatedWEBP", "widgets_values": ["ComfyUI", 16, False, 90, "default"]}]}
FOOOCUS_JSON = {
    "adm_guidance": "(1.5, 0.8, 0.3)",
    "base_model": "juggernautXL_v8Rundiffusion.safetensors",
    "base_model_hash": "aeb7e9e689",
    "full_prompt": ["a lighthouse at dusk"],
    "performance": "Speed",
    "steps": 30,
    "version": "Fooocus v2.5.5",
}
FOOOCUS_A1111 = A1111.replace(
    "Model: sd_xl_base_1.0, Version: v1.6.0", "Model: juggernautXL_v8Rundiffusion, Version: Fooocus v2.5.5"
)
SWARM = {"sui_image_params": {"prompt": "a fox", "model": "Flux/flux1-dev-fp8", "seed": 1, "swarm_version": "0.9.1.1"}}


def evidence(path: Path) -> list[Finding]:
    return collect_evidence(path, EvidenceConfig())


def ai(findings: list[Finding]) -> list[tuple[str, str | None]]:
    assert [f for f in findings if f.claim == "error"] == []
    return [(f.source, f.generator) for f in findings if f.claim == "ai"]


def comfy_webp(frames: int, prompt: dict, extras: dict) -> bytes:
    """A WebP saved as ComfyUI's ``save_animated_webp`` saves it (see the module docstring)."""
    images = [Image.fromarray(np.roll(small_photo(), 8 * i, axis=1)) for i in range(frames)]
    exif = images[0].getexif()
    exif[0x0110] = "prompt:{}".format(json.dumps(prompt))
    tag = 0x010F
    for key, value in extras.items():
        exif[tag] = "{}:{}".format(key, json.dumps(value))
        tag -= 1
    out = io.BytesIO()
    images[0].save(
        out, format="WEBP", save_all=True, duration=62, append_images=images[1:], exif=exif, lossless=False, quality=90, method=4
    )
    return out.getvalue()


@pytest.mark.parametrize("frames", [1, 3])
def test_comfyui_webp_exif_names_the_checkpoint(tmp_path, frames):
    path = write(tmp_path / "ComfyUI_00001_.webp", comfy_webp(frames, FLUX_PROMPT, {"workflow": WORKFLOW}))
    with Image.open(path) as image:
        assert getattr(image, "n_frames", 1) == frames
    findings = evidence(path)
    assert ai(findings) == [("exif", "FLUX.1 (Black Forest Labs)")]
    assert findings[0].detail == "EXIF Model holds 'prompt': ComfyUI prompt graph, model flux1-dev-fp8.safetensors"


def test_comfyui_video_webp_names_the_diffusion_model_and_is_no_camera(tmp_path):
    """A Wan text-to-video output: the model is a ``unet_name``; the workflow in Make is no camera maker,
    even when the prompt mentions one."""
    workflow = {"nodes": [{"type": "CLIPTextEncode", "widgets_values": ["a street shot on a Canon camera"]}]}
    extras = {"workflow": workflow, "extra": {"note": "Nikon"}}
    findings = evidence(write(tmp_path / "wan.webp", comfy_webp(3, WAN_PROMPT, extras)))
    assert [(f.source, f.claim, f.generator) for f in findings] == [("exif", "ai", "wan2.1_t2v_1.3B_fp16")]
    assert "ComfyUI prompt graph" in findings[0].detail


def test_comfyui_workflow_alone_in_webp_names_comfyui(tmp_path):
    images = Image.fromarray(small_photo())
    exif = images.getexif()
    exif[0x010F] = "workflow:{}".format(json.dumps(WORKFLOW))
    out = io.BytesIO()
    images.save(out, format="WEBP", exif=exif)
    findings = evidence(write(tmp_path / "w.webp", out.getvalue()))
    assert ai(findings) == [("exif", "ComfyUI")]
    assert findings[0].detail == "EXIF Make holds 'workflow': ComfyUI workflow"


def test_comfyui_animated_png_comf_chunks(tmp_path):
    """``SaveAnimatedPNG`` writes private ``comf`` chunks after the image data, never tEXt."""
    info = PngImagePlugin.PngInfo()
    for key, value in (("prompt", FLUX_PROMPT), ("workflow", WORKFLOW)):
        info.add(b"comf", key.encode("latin-1") + b"\0" + json.dumps(value).encode("latin-1"), after_idat=True)
    frames = [Image.fromarray(small_photo()), Image.fromarray(small_photo()[::-1].copy())]
    out = io.BytesIO()
    frames[0].save(out, format="PNG", pnginfo=info, compress_level=4, save_all=True, duration=166, append_images=frames[1:])
    findings = evidence(write(tmp_path / "anim.png", out.getvalue()))
    assert ai(findings) == [("png-text", "FLUX.1 (Black Forest Labs)")]


def test_automatic1111_names_the_model_it_states(tmp_path):
    text = A1111.replace("Model: sd_xl_base_1.0", "Model: animagineXLV31")
    findings = evidence(write(tmp_path / "a.png", png_with_text(small_photo(), {"parameters": text})))
    assert ai(findings) == [("png-text", "animagineXLV31")]
    assert findings[0].detail == "PNG text 'parameters': AUTOMATIC1111 parameters, model animagineXLV31 (hash 31e35c80fc)"


def test_automatic1111_without_a_model_names_the_web_ui(tmp_path):
    text = A1111.replace(", Model hash: 31e35c80fc, Model: sd_xl_base_1.0", "")
    findings = evidence(write(tmp_path / "a.png", png_with_text(small_photo(), {"parameters": text})))
    assert ai(findings) == [("png-text", "Stable Diffusion (AUTOMATIC1111 web UI)")]


@pytest.mark.parametrize(
    "parameters, what",
    [
        (json.dumps(FOOOCUS_JSON, sort_keys=True), "Fooocus parameters"),
        (FOOOCUS_A1111, "Fooocus parameters (AUTOMATIC1111 style)"),
    ],
)
def test_fooocus_png_is_fooocus_once(tmp_path, parameters, what):
    scheme = "fooocus" if parameters.startswith("{") else "a1111"
    texts = {"parameters": parameters, "fooocus_scheme": scheme}
    findings = evidence(write(tmp_path / "f.png", png_with_text(small_photo(), texts)))
    assert ai(findings) == [("png-text", "juggernautXL_v8Rundiffusion")]
    assert findings[0].detail.startswith(f"PNG text 'parameters': {what}, model juggernautXL_v8Rundiffusion")
    assert "AUTOMATIC1111 parameters" not in findings[0].detail


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
def test_fooocus_jpeg_and_webp_exif(tmp_path, fmt):
    exif = Image.Exif()
    exif[0x9286] = json.dumps(FOOOCUS_JSON, sort_keys=True)
    exif[0x0131] = "Fooocus v2.5.5"
    exif[0x927C] = "fooocus"
    findings = evidence(write(tmp_path / f"f.{fmt.lower()}", encode(small_photo(), fmt, exif=exif, quality=95)))
    assert ai(findings) == [("exif", "juggernautXL_v8Rundiffusion")]
    assert (
        findings[0].detail
        == "EXIF UserComment holds Fooocus parameters, model juggernautXL_v8Rundiffusion.safetensors (hash aeb7e9e689)"
    )


def test_swarmui_png_and_jpeg(tmp_path):
    png = png_with_text(small_photo(), {}, itxt={"parameters": json.dumps(SWARM, indent=2)})
    findings = evidence(write(tmp_path / "s.png", png))
    assert ai(findings) == [("png-text", "FLUX.1 (Black Forest Labs)")]
    assert findings[0].detail == "PNG text 'parameters': SwarmUI parameters, model Flux/flux1-dev-fp8"
    comment = b"UNICODE\0" + json.dumps(SWARM).encode("utf-16-be")  # UCS-2 in the block's byte order (big-endian here)
    findings = evidence(write(tmp_path / "s.jpg", encode(small_photo(), "JPEG", exif=exif_block({}, user_comment=comment))))
    assert [(f.source, f.generator, f.detail.split(",")[0]) for f in findings] == [
        ("exif", "FLUX.1 (Black Forest Labs)", "EXIF UserComment holds SwarmUI parameters")
    ]


def test_swarmui_is_named_before_its_comfyui_backend(tmp_path):
    """SwarmUI writes its ComfyUI backend's ``prompt`` chunk first, then its own ``parameters``."""
    texts = {"prompt": json.dumps(FLUX_PROMPT), "parameters": json.dumps(SWARM)}
    findings = evidence(write(tmp_path / "s.png", png_with_text(small_photo(), texts)))
    assert ai(findings) == [("png-text", "FLUX.1 (Black Forest Labs)")]
    assert findings[0].detail.startswith("PNG text 'parameters': SwarmUI parameters")


def test_swarmui_without_a_model_names_swarmui(tmp_path):
    texts = {"parameters": json.dumps({"sui_image_params": {"prompt": "a fox", "seed": 1}})}
    assert ai(evidence(write(tmp_path / "s.png", png_with_text(small_photo(), texts)))) == [("png-text", "SwarmUI")]


@pytest.mark.parametrize(
    "description",
    ["[Camera]\nMake=Canon\nLens=EF 50mm", "{draft caption}", "[1] Wire photo, 2024"],
)
def test_text_that_only_looks_like_json_in_a_tiff_description_is_text(tmp_path, description):
    data = encode(small_photo(), "TIFF", tiffinfo={0x010E: description, 0x010F: "Canon"})
    findings = evidence(write(tmp_path / "d.tif", data))
    assert [(f.source, f.claim, f.generator) for f in findings] == [("exif", "camera", "Canon")]


SD_METADATA = Path(__file__).parent / "assets" / "third_party" / "sd-metadata"
"""Cuts of real outputs from the MIT-licensed sd-metadata sample set (see SOURCE.md there)."""


@pytest.mark.parametrize("frames", [1, 2])
def test_a_real_comfyui_animated_webp_exif_block(tmp_path, frames):
    """The EXIF block ComfyUI's SaveAnimatedWEBP wrote into a real output, carried by a small WebP."""
    block = (SD_METADATA / "comfyui-animated-webp.exif").read_bytes()
    images = [Image.fromarray(np.roll(small_photo(), 8 * i, axis=0)) for i in range(frames)]
    out = io.BytesIO()
    images[0].save(out, format="WEBP", save_all=True, append_images=images[1:], duration=1000, exif=block, lossless=True)
    findings = evidence(write(tmp_path / "comfy.webp", out.getvalue()))
    assert ai(findings) == [("exif", "Stable Diffusion XL")]
    assert findings[0].detail == "EXIF Model holds 'prompt': ComfyUI prompt graph, model waiIllustriousSDXL_v160.safetensors"


def test_ruinedfooocus_json_names_itself_in_the_detail(tmp_path):
    """RuinedFooocus's ``parameters`` JSON (keys as in sd-metadata's ruined-fooocus.png sample)."""
    parameters = {
        "Prompt": "a fox",
        "steps": 30,
        "base_model_name": "waiNSFWIllustrious_v150.safetensors",
        "software": "RuinedFooocus",
    }
    findings = evidence(write(tmp_path / "r.png", png_with_text(small_photo(), {"parameters": json.dumps(parameters)})))
    assert ai(findings) == [("png-text", "waiNSFWIllustrious_v150")]
    assert findings[0].detail == "PNG text 'parameters': RuinedFooocus parameters, model waiNSFWIllustrious_v150.safetensors"
