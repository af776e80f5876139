"""Real files for the evidence tests, made on the fly: images with metadata, C2PA-signed images, a CA chain."""

from __future__ import annotations

import datetime
import io
import zlib
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
XMP_NAMESPACES = {
    "Iptc4xmpExt": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
    "dc": "http://purl.org/dc/elements/1.1/",
    "tiff": "http://ns.adobe.com/tiff/1.0/",
    "dcterms": "http://purl.org/dc/terms/",
}
IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
A1111 = (
    "a lighthouse at dusk, oil painting\nNegative prompt: blurry\n"
    "Steps: 30, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 1234, Size: 1024x1024, "
    "Model hash: 31e35c80fc, Model: sd_xl_base_1.0, Version: v1.6.0"
)


@cache
def photo(index: int = 0) -> np.ndarray:
    """A real photograph (scikit-learn's sample images: 0 is china.jpg, 1 flower.jpg), 427x640 RGB."""
    from sklearn.datasets import load_sample_images

    return load_sample_images().images[index]


def small_photo() -> np.ndarray:
    return photo()[:64, :96].copy()


def encode(array: np.ndarray, fmt: str, **params: Any) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format=fmt, **params)
    return out.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def png_with_text(array: np.ndarray, texts: dict[str, str], *, itxt: dict[str, str] | None = None) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in texts.items():
        info.add_text(key, value)
    for key, value in (itxt or {}).items():
        info.add_itxt(key, value)
    return encode(array, "PNG", pnginfo=info)


def png_chunk(tag: bytes, data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + tag + data + zlib.crc32(tag + data).to_bytes(4, "big")


def png_insert(png: bytes, chunk: bytes, *, before: bytes = b"IEND") -> bytes:
    """Insert a whole chunk before the first chunk of type ``before`` (IEND: after the image data)."""
    at = png.index(before) - 4
    return png[:at] + chunk + png[at:]


def xmp_packet(attrs: dict[str, str] | None = None, elements: str = "") -> bytes:
    namespaces = " ".join(f'xmlns:{p}="{u}"' for p, u in XMP_NAMESPACES.items())
    attributes = " ".join(f'{k}="{v}"' for k, v in (attrs or {}).items())
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="{RDF}">'
        f'<rdf:Description rdf:about="" {namespaces} {attributes}>{elements}</rdf:Description>'
        '</rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    ).encode("utf-8")


def exif_block(ifd0: dict[int, Any], user_comment: bytes | None = None) -> bytes:
    exif = Image.Exif()
    for tag, value in ifd0.items():
        exif[tag] = value.encode("utf-8") if isinstance(value, str) else value  # Pillow would write str as ASCII
    if user_comment is not None:
        exif.get_ifd(0x8769)[0x9286] = user_comment
    return exif.tobytes()


# C2PA -------------------------------------------------------------------------------------------

AI_SOURCE = IPTC + "trainedAlgorithmicMedia"
CAPTURE_SOURCE = IPTC + "digitalCapture"


def chain(leaf_days: tuple[int, int] = (-1, 365)) -> tuple[bytes, bytes, bytes]:
    """A throw-away CA chain: (root PEM, signing cert + intermediate PEM, signing key PEM).

    root CA -> intermediate CA -> an ES256 (P-256) end-entity certificate with the key usage and
    extended key usages C2PA requires (digitalSignature; emailProtection and documentSigning),
    valid from ``leaf_days[0]`` to ``leaf_days[1]`` days from now (both in the past: expired).
    One chain per validity for the whole session.
    """
    return _chain(leaf_days)


@cache
def _chain(leaf_days: tuple[int, int]) -> tuple[bytes, bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(common: str) -> x509.Name:
        return x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, common), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Evidence Tests")]
        )

    def certificate(
        subject: str, issuer: str, key: Any, issuer_key: Any, *, ca: bool, days: tuple[int, int] = (-1, 365)
    ) -> x509.Certificate:
        usage = dict.fromkeys(
            ("content_commitment", "key_encipherment", "data_encipherment", "key_agreement", "encipher_only", "decipher_only"),
            False,
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(name(issuer))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + datetime.timedelta(days=days[0]))
            .not_valid_after(now + datetime.timedelta(days=days[1]))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
            .add_extension(x509.KeyUsage(digital_signature=not ca, key_cert_sign=ca, crl_sign=ca, **usage), critical=True)
        )
        if not ca:
            ekus = [ExtendedKeyUsageOID.EMAIL_PROTECTION, ObjectIdentifier("1.3.6.1.5.5.7.3.36")]
            builder = builder.add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    root_key, mid_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = certificate("Evidence Test Root", "Evidence Test Root", root_key, root_key, ca=True)
    mid = certificate("Evidence Test Intermediate", "Evidence Test Root", mid_key, root_key, ca=True)
    leaf = certificate("Evidence Test Signer", "Evidence Test Intermediate", leaf_key, mid_key, ca=False, days=leaf_days)
    pem = serialization.Encoding.PEM
    key = leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return root.public_bytes(pem), leaf.public_bytes(pem) + mid.public_bytes(pem), key


def manifest(actions: list[dict[str, Any]], generator: str = "Evidence Tests") -> dict[str, Any]:
    return {
        "claim_generator_info": [{"name": generator, "version": "1.0"}],
        "title": "test image",
        "assertions": [{"label": "c2pa.actions", "data": {"actions": actions}}],
    }


def ai_manifest(agent: str = "DALL·E 3") -> dict[str, Any]:
    return manifest([{"action": "c2pa.created", "digitalSourceType": AI_SOURCE, "softwareAgent": {"name": agent}}])


def sign(
    source: bytes,
    mime: str,
    definition: dict[str, Any],
    *,
    sidecar: bool = False,
    remote_url: str | None = None,
    leaf_days: tuple[int, int] = (-1, 365),
) -> tuple[bytes, bytes]:
    """Sign ``source`` with the test chain (its signer valid over ``leaf_days``): (the signed asset, the manifest store bytes)."""
    import c2pa

    _, certs, key = chain(leaf_days)
    settings = {"version": 1, "builder": {"thumbnail": {"enabled": False}}, "verify": {"verify_after_sign": False}}
    with c2pa.Context.from_dict(settings) as context, c2pa.Builder(definition, context=context) as builder:
        if sidecar or remote_url:
            builder.set_no_embed()
        if remote_url:
            builder.set_remote_url(remote_url)
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, certs, key, None))
        out = io.BytesIO()
        store = builder.sign(signer, mime, io.BytesIO(source), out)
    return out.getvalue(), store


def splice_pixels(signed: bytes, fresh: bytes, fmt: str) -> bytes:
    """``signed`` with its image data replaced by ``fresh``'s (same size, tables and mode): new pixels, old manifest."""
    if fmt == "JPEG":
        return signed[: signed.index(b"\xff\xda")] + fresh[fresh.index(b"\xff\xda") :]
    return signed[: signed.index(b"IDAT") - 4] + fresh[fresh.index(b"IDAT") - 4 :]


def break_manifest_box(signed: bytes, fmt: str) -> bytes:
    """``signed`` (JPEG or PNG) with 40 junk bytes over the box after the C2PA store's description box;
    a PNG's caBX chunk gets its CRC fixed, so that only the box inside is broken."""
    at = signed.index(b"jumb") + 30  # just past the store's description box: the next box header
    data = signed[:at] + b"\xa5" * 40 + signed[at + 40 :]
    if fmt == "PNG":
        start = data.index(b"caBX") - 4
        length = int.from_bytes(data[start : start + 4], "big")
        data = data[:start] + png_chunk(b"caBX", data[start + 8 : start + 8 + length]) + data[start + 12 + length :]
    return data
