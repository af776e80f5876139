"""Suite registry and folder discovery on trees shaped like the public releases (files hold only a
PNG header, whatever their names: discovery reads headers and decodes nothing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aigdetect.errors import ConfigError, InputError, LayoutError
from aigdetect.evaluation.suites import (
    SUITES,
    discover,
    discover_pair,
    folder_suite,
    normalize_name,
)

UNIVFD_TITLES = [
    "ProGAN", "CycleGAN", "BigGAN", "StyleGAN", "GauGAN", "StarGAN", "Deepfakes", "SITD", "SAN", "CRN", "IMLE",
    "Guided", "LDM 200 steps", "LDM 200 w/CFG", "LDM 100 steps", "GLIDE 100-27", "GLIDE 50-27", "GLIDE 100-10", "DALL-E",
]  # fmt: skip
GENIMAGE_TITLES = ["BigGAN", "ADM", "GLIDE", "Midjourney", "SD v1.4", "SD v1.5", "VQDM", "Wukong"]


PNG_HEADER = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


def touch(folder: Path, count: int, suffix: str = ".png") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{i:02d}{suffix}" for i in range(count)]
    for path in paths:
        path.write_bytes(PNG_HEADER)
    return paths


def test_registry_lists_the_papers_columns_in_order() -> None:
    assert SUITES.names() == ["univfd", "genimage", "dalle2"]
    assert [s.title for s in SUITES.get("univfd").subsets] == UNIVFD_TITLES
    assert [s.title for s in SUITES.get("genimage").subsets] == GENIMAGE_TITLES
    assert [s.title for s in SUITES.get("dalle2").subsets] == ["DALL-E 2"]
    with pytest.raises(ConfigError, match="univfd, genimage, dalle2"):
        SUITES.get("imagenet")


def test_univfd_families_follow_the_paper() -> None:
    members = SUITES.get("univfd").family_members()
    assert members == {
        "GAN": ["progan", "cyclegan", "biggan", "stylegan", "gaugan", "stargan"],
        "Deepfakes": ["deepfake"],
        "Low-level vision": ["sitd", "san"],
        "Perceptual loss": ["crn", "imle"],
        "Diffusion": ["guided", "ldm_200", "ldm_200_cfg", "ldm_100", "glide_100_27", "glide_50_27", "glide_100_10"],
        "Autoregressive": ["dalle"],
    }
    assert SUITES.get("genimage").family_members()["GAN"] == ["biggan"]
    assert SUITES.get("dalle2").family_members() == {}


def test_folder_names_match_the_releases_spellings() -> None:
    sdv14 = SUITES.get("genimage").subsets[4]
    for name in ("stable_diffusion_v_1_4", "imagenet_ai_0419_sdv4", "SD v1.4", "sd_v1_4"):
        assert sdv14.matches(name)
    assert not sdv14.matches("stable_diffusion_v_1_5")
    sitd = SUITES.get("univfd").subsets[7]
    assert sitd.matches("seeingdark") and sitd.matches("SITD")
    assert normalize_name("LDM_200-cfg") == "ldm200cfg"


def test_univfd_tree_with_both_releases(tmp_path: Path) -> None:
    cnn = tmp_path / "CNN" / "test"
    progan_real = touch(cnn / "progan" / "airplane" / "0_real", 2) + touch(cnn / "progan" / "cat" / "0_real", 1)
    touch(cnn / "progan" / "airplane" / "1_fake", 3)
    touch(cnn / "progan" / "cat" / "1_fake", 1)
    touch(cnn / "seeingdark" / "0_real", 2, ".jpg")
    touch(cnn / "seeingdark" / "1_fake", 2)
    (cnn / "san").mkdir()
    diffusion = tmp_path / "diffusion_datasets"
    touch(diffusion / "imagenet" / "0_real", 4)
    touch(diffusion / "laion" / "0_real", 5)
    touch(diffusion / "guided" / "1_fake", 4)
    touch(diffusion / "ldm_200", 3)  # loose fakes, no 1_fake/ level
    (diffusion / "laion" / "0_real" / "notes.txt").write_text("not an image")

    found = discover(SUITES.get("univfd"), tmp_path)
    by_key = {f.subset.key: f for f in found.found}
    assert list(by_key) == ["progan", "sitd", "guided", "ldm_200"]
    assert [len(by_key[k].real) for k in by_key] == [3, 2, 4, 5]
    assert [len(by_key[k].fake) for k in by_key] == [4, 2, 4, 3]
    assert by_key["progan"].real == progan_real
    assert by_key["guided"].location == "diffusion_datasets/guided + diffusion_datasets/imagenet"
    assert all(p.parent.name == "0_real" for p in by_key["guided"].real)
    assert by_key["ldm_200"].location == "diffusion_datasets/ldm_200 + diffusion_datasets/laion"
    missing = [s.key for s in found.missing]
    assert "cyclegan" in missing and "dalle" in missing and "san" not in missing
    notes = found.notes
    assert notes == [
        "SAN: skipped, no images under 0_real/ or 1_fake/ in CNN/test/san",
        f"LDM 200 steps: left out 1 file that no image decoder accepts (e.g. {diffusion / 'laion' / '0_real' / 'notes.txt'})",
    ]


def test_diffusion_subset_without_its_reals_folder_is_skipped_with_a_note(tmp_path: Path) -> None:
    touch(tmp_path / "glide_100_27" / "1_fake", 2)
    touch(tmp_path / "progan" / "0_real", 1)
    touch(tmp_path / "progan" / "1_fake", 1)
    found = discover(SUITES.get("univfd"), tmp_path)
    assert [f.subset.key for f in found.found] == ["progan"]
    assert found.notes == ["GLIDE 100-27: skipped, its reals folder laion/ is not beside glide_100_27"]


def test_subset_with_one_class_only_is_skipped(tmp_path: Path) -> None:
    touch(tmp_path / "gaugan" / "1_fake", 2)
    touch(tmp_path / "crn" / "0_real", 1)
    touch(tmp_path / "crn" / "1_fake", 1)
    found = discover(SUITES.get("univfd"), tmp_path)
    assert [f.subset.key for f in found.found] == ["crn"]
    assert "GauGAN: skipped, 0 real and 2 fake images in gaugan (both are needed)" in found.notes


def test_genimage_nested_and_flat_spellings(tmp_path: Path) -> None:
    touch(tmp_path / "stable_diffusion_v_1_4" / "imagenet_ai_0419_sdv4" / "val" / "ai", 3)
    touch(tmp_path / "stable_diffusion_v_1_4" / "imagenet_ai_0419_sdv4" / "val" / "nature", 2, ".JPEG")
    touch(tmp_path / "stable_diffusion_v_1_4" / "imagenet_ai_0419_sdv4" / "train" / "ai", 5)
    touch(tmp_path / "imagenet_glide" / "val" / "ai", 1)
    touch(tmp_path / "imagenet_glide" / "val" / "nature", 1)
    touch(tmp_path / "ADM" / "val" / "ai" / "n01440764", 2)
    touch(tmp_path / "ADM" / "val" / "nature", 2)
    found = discover(SUITES.get("genimage"), tmp_path)
    by_key = {f.subset.key: f for f in found.found}
    assert list(by_key) == ["adm", "glide", "sdv14"]
    assert by_key["sdv14"].location == "stable_diffusion_v_1_4/imagenet_ai_0419_sdv4/val"
    assert (len(by_key["sdv14"].real), len(by_key["sdv14"].fake)) == (2, 3)
    assert len(by_key["adm"].fake) == 2
    assert [s.key for s in found.missing] == ["biggan", "midjourney", "sdv15", "vqdm", "wukong"]


def test_genimage_biggan_is_not_taken_for_univfd_biggan(tmp_path: Path) -> None:
    touch(tmp_path / "GenImage" / "BigGAN" / "val" / "ai", 2)
    touch(tmp_path / "GenImage" / "BigGAN" / "val" / "nature", 2)
    touch(tmp_path / "CNN" / "biggan" / "0_real", 3)
    touch(tmp_path / "CNN" / "biggan" / "1_fake", 3)
    univfd = discover(SUITES.get("univfd"), tmp_path)
    genimage = discover(SUITES.get("genimage"), tmp_path)
    assert [(f.subset.key, f.location) for f in univfd.found] == [("biggan", "CNN/biggan")]
    assert [(f.subset.key, f.location) for f in genimage.found] == [("biggan", "GenImage/BigGAN/val")]


def test_dalle2_at_the_root_or_in_its_folder(tmp_path: Path) -> None:
    touch(tmp_path / "a" / "0_real", 2)
    touch(tmp_path / "a" / "1_fake", 3)
    at_root = discover(SUITES.get("dalle2"), tmp_path / "a")
    assert at_root.found[0].location == "." and len(at_root.found[0].fake) == 3
    touch(tmp_path / "b" / "DALLE2" / "0_real", 1)
    touch(tmp_path / "b" / "DALLE2" / "1_fake", 1)
    assert discover(SUITES.get("dalle2"), tmp_path / "b").found[0].location == "DALLE2"


def test_dalle2_in_dires_split_domain_generator_tree(tmp_path: Path) -> None:
    # DIRE's DiffusionForensics: <split>/<domain>/{real,<generator>}; only the test split has DALL-E 2.
    images = tmp_path / "DiffusionForensics" / "images"
    touch(images / "train" / "lsun_bedroom" / "real", 4)
    touch(images / "train" / "lsun_bedroom" / "adm", 4)
    reals = touch(images / "test" / "lsun_bedroom" / "real", 3)
    fakes = touch(images / "test" / "lsun_bedroom" / "dalle2", 2)
    touch(images / "test" / "lsun_bedroom" / "midjourney", 5)
    found = discover(SUITES.get("dalle2"), images).found
    assert len(found) == 1
    assert (sorted(found[0].real), sorted(found[0].fake)) == (reals, fakes)
    assert found[0].location == "test/lsun_bedroom/dalle2 + test/lsun_bedroom/real"
    # Pointing at the generator folder itself works too; its reals are the real/ beside it.
    direct = discover(SUITES.get("dalle2"), images / "test" / "lsun_bedroom" / "dalle2").found[0]
    assert (sorted(direct.real), sorted(direct.fake)) == (reals, fakes)


def test_dalle2_in_two_domains_is_refused_rather_than_picked(tmp_path: Path) -> None:
    for domain in ("lsun_bedroom", "imagenet"):
        touch(tmp_path / "test" / domain / "real", 1)
        touch(tmp_path / "test" / domain / "dalle2", 1)
    with pytest.raises(LayoutError, match="several places"):
        discover(SUITES.get("dalle2"), tmp_path)


def test_root_matching_no_layout_names_expected_and_found(tmp_path: Path) -> None:
    touch(tmp_path / "holiday_photos", 2)
    (tmp_path / "readme.txt").write_text("")
    with pytest.raises(LayoutError) as error:
        discover(SUITES.get("univfd"), tmp_path)
    message = str(error.value)
    assert "progan" in message and "seeingdark" in message and "laion (reals)" in message
    assert "found: holiday_photos/, readme.txt" in message
    with pytest.raises(LayoutError, match=r"val/ai\|nature"):
        discover(SUITES.get("genimage"), tmp_path)
    with pytest.raises(InputError, match="not a directory"):
        discover(SUITES.get("univfd"), tmp_path / "absent")


def test_only_empty_subsets_is_a_layout_error_that_says_why(tmp_path: Path) -> None:
    (tmp_path / "progan" / "0_real").mkdir(parents=True)
    with pytest.raises(LayoutError, match="ProGAN: skipped"):
        discover(SUITES.get("univfd"), tmp_path)


def test_the_same_subset_in_two_places_is_refused(tmp_path: Path) -> None:
    for tree in ("one", "two"):
        touch(tmp_path / tree / "stargan" / "0_real", 1)
        touch(tmp_path / tree / "stargan" / "1_fake", 1)
    with pytest.raises(LayoutError, match="StarGAN was found in several places"):
        discover(SUITES.get("univfd"), tmp_path)


def test_folder_pair(tmp_path: Path) -> None:
    real = touch(tmp_path / "real" / "x", 2)
    fake = touch(tmp_path / "fake", 3, ".webp")
    found = discover_pair(tmp_path / "real", tmp_path / "fake", "My set")
    assert found.suite.subsets[0].key == "My_set" and found.suite.subsets[0].title == "My set"
    assert found.found[0].real == real and found.found[0].fake == fake
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="`fake` .* holds no image files"):
        discover_pair(tmp_path / "real", tmp_path / "empty", "x")
    with pytest.raises(InputError, match="`real` .* is not a directory"):
        discover_pair(tmp_path / "nope", tmp_path / "fake", "x")
    with pytest.raises(InputError, match="overlap"):
        discover_pair(tmp_path, tmp_path / "fake", "x")
    with pytest.raises(ConfigError):
        folder_suite("  ")
