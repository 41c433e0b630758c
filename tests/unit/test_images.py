import os

import numpy as np
import pytest
from PIL import Image

from noisyflow.data.images import Preprocess, decode_image, load_images, resolve_inside
from noisyflow.errors import InputDataError
from tests.unit.imagefiles import png_declaring, write_image


def _bands(path, width=30, height=10):
    """Left third red, middle green, right third blue."""
    arr = np.zeros((height, width, 3), np.uint8)
    arr[:, : width // 3, 0] = 255
    arr[:, width // 3 : 2 * width // 3, 1] = 255
    arr[:, 2 * width // 3 :, 2] = 255
    Image.fromarray(arr).save(path)
    return path


def test_crop_keeps_the_centre_and_stretch_keeps_everything(tmp_path):
    path = _bands(tmp_path / "bands.png")
    crop, _ = load_images([path], image_size=8, resize="crop")
    stretch, _ = load_images([path], image_size=8, resize="stretch")
    assert crop.shape == stretch.shape == (1, 8, 8, 3)
    # crop: the centred 10x10 square is the green band (the bilinear kernel at the box's edge
    # still sees a little of the neighbouring bands, as resize-then-crop would)
    assert (crop[0, :, 1:-1, 1] == 255).all() and crop[0, :, 1:-1][..., [0, 2]].max() == 0
    assert crop[0, :, [0, -1], 1].min() >= 200 and crop[0, :, :, [0, 2]].max() <= 55
    # stretch: the left columns stay red, the right ones blue
    assert stretch[0, :, 0, 0].min() >= 254 and stretch[0, :, 0, 2].max() == 0
    assert stretch[0, :, -1, 2].min() >= 254


def test_crop_with_a_height_width_target_uses_its_aspect_ratio(tmp_path):
    path = _bands(tmp_path / "bands.png", width=30, height=10)
    out, _ = load_images([path], image_size=(4, 12))  # same 1:3 aspect: nothing cropped
    assert out.shape == (1, 4, 12, 3)
    assert out[0, :, 0, 0].min() >= 254 and out[0, :, -1, 2].min() >= 254


@pytest.mark.parametrize(
    ("mode", "suffix"),
    [
        ("RGB", ".png"),
        ("RGBA", ".png"),
        ("LA", ".png"),
        ("L", ".png"),
        ("P", ".png"),
        ("1", ".png"),
        ("I;16", ".png"),
        ("CMYK", ".jpg"),
        ("RGB", ".bmp"),
        ("RGB", ".webp"),
        ("P", ".gif"),
        ("RGB", ".tiff"),
    ],
)
@pytest.mark.parametrize("channels", [1, 3])
def test_every_mode_converts_to_the_channel_count(tmp_path, mode, suffix, channels):
    path = write_image(tmp_path / f"im{suffix}", mode=mode, size=(9, 7))
    spec = Preprocess(size=(5, 5), channels=channels)
    arr, original = decode_image(path, name="im", spec=spec)
    assert arr.shape == (5, 5, channels) and arr.dtype == np.uint8
    assert original == Image.open(path).mode


def test_mixed_modes_are_counted_per_original_mode(tmp_path):
    paths = [
        write_image(tmp_path / "a.png", mode="RGB"),
        write_image(tmp_path / "b.png", mode="RGBA"),
        write_image(tmp_path / "c.png", mode="RGBA"),
        write_image(tmp_path / "d.png", mode="L"),
        write_image(tmp_path / "e.png", mode="P"),
    ]
    _, modes = load_images(paths, image_size=6)
    assert modes == {"L": 1, "P": 1, "RGB": 1, "RGBA": 2}


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    grey = np.array([[0, 32896, 65535, 1000]], dtype=np.uint16)
    Image.fromarray(grey).save(tmp_path / "g.png")
    arr, mode = decode_image(tmp_path / "g.png", name="g", spec=Preprocess(None, channels=1))
    assert mode.startswith("I;16") and arr[0, :, 0].tolist() == [0, 128, 255, 4]


def test_grey_is_itu_luma_and_rgb_from_grey_repeats_it(tmp_path):
    Image.new("RGB", (4, 4), (255, 0, 0)).save(tmp_path / "red.png")
    Image.new("L", (4, 4), 77).save(tmp_path / "grey.png")
    red, _ = decode_image(tmp_path / "red.png", name="r", spec=Preprocess(None, channels=1))
    grey, _ = decode_image(tmp_path / "grey.png", name="g", spec=Preprocess(None, channels=3))
    assert (red == 76).all()  # 0.299 * 255
    assert (grey == 77).all() and grey.shape == (4, 4, 3)


def test_large_jpeg_decodes_through_draft_to_the_right_size_and_colour(tmp_path):
    Image.new("RGB", (400, 300), (200, 30, 60)).save(tmp_path / "big.jpg", quality=95)
    arr, _ = decode_image(tmp_path / "big.jpg", name="big", spec=Preprocess((16, 16)))
    assert arr.shape == (16, 16, 3)
    assert np.abs(arr.astype(int) - [200, 30, 60]).max() <= 4


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_image_is_an_error_naming_the_file(tmp_path, suffix):
    path = write_image(tmp_path / f"t{suffix}", size=(64, 64))
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(InputDataError, match=rf"t{suffix}: cannot decode .* completely"):
        load_images([path], image_size=8)


def test_a_file_that_is_not_an_image_is_named(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("these are my notes\n")
    with pytest.raises(InputDataError, match=r"notes.png: not an image Pillow can read.*\.jpg"):
        load_images([path], image_size=8)


def test_declared_size_over_max_pixels_is_refused_before_decoding(tmp_path):
    bomb = png_declaring(tmp_path / "bomb.png", 100_000, 100_000)  # 10^10 pixels, 80 bytes
    saved = Image.MAX_IMAGE_PIXELS
    with pytest.raises(InputDataError) as err:
        load_images([bomb], image_size=8, max_pixels=89_478_485)
    msg = str(err.value)
    assert "bomb.png" in msg and "100000x100000" in msg and "data.max_pixels = 89,478,485" in msg
    assert saved == Image.MAX_IMAGE_PIXELS  # Pillow's own guard restored afterwards


def test_max_pixels_applies_to_genuine_images_too(tmp_path):
    path = write_image(tmp_path / "ok.png", size=(12, 10))
    with pytest.raises(InputDataError, match=r"ok.png: declares 12x10 = 120 pixels.*= 100"):
        load_images([path], image_size=8, max_pixels=100)
    assert load_images([path], image_size=8, max_pixels=120)[0].shape == (1, 8, 8, 3)


def test_keeping_the_size_requires_one_size(tmp_path):
    a = write_image(tmp_path / "a.png", size=(12, 10))
    b = write_image(tmp_path / "b.png", size=(10, 12))
    assert load_images([a, a], image_size=None)[0].shape == (2, 10, 12, 3)
    with pytest.raises(InputDataError, match=r"b.png: image is 10x12, expected 12x10"):
        load_images([a, b], image_size=None)


def test_paths_escaping_the_root_are_refused(tmp_path):
    root = tmp_path / "root"
    inside = write_image(root / "cls" / "a.png")
    outside = write_image(tmp_path / "secret.png")
    os.symlink(outside, root / "cls" / "link_out.png")
    os.symlink(inside, root / "link_in.png")
    assert resolve_inside(root, "cls/a.png") == inside.resolve()
    assert resolve_inside(root, str(inside)) == inside.resolve()  # absolute but inside
    assert resolve_inside(root, "link_in.png") == inside.resolve()
    for bad in ("../secret.png", str(outside), "cls/link_out.png", "cls/../../secret.png"):
        with pytest.raises(InputDataError, match="outside the data root"):
            resolve_inside(root, bad)
    with pytest.raises(InputDataError, match="outside the data root"):
        load_images(["../secret.png"], image_size=8, root=root)
