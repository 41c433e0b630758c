import os

import numpy as np
import pytest
from PIL import Image

from noisyflow.data import decode
from noisyflow.data.decode import decode_to_cache, transform_array
from noisyflow.data.images import Preprocess, load_images
from noisyflow.data.sources import load_source
from noisyflow.errors import InputDataError
from tests.unit.imagefiles import fake_pack, image_folder, params, write_image

SPEC = Preprocess(size=(8, 8), resize="crop", channels=3)


def _folder(tmp_path, counts=None):
    root = image_folder(tmp_path / "photos", counts or {"cat": 5, "dog": 4})
    return root, load_source(params(source="imagefolder", path=str(root))).encoded


def _leftovers(cache):
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


def test_decoded_npy_equals_decoding_each_file(tmp_path):
    _, encoded = _folder(tmp_path)
    path, stats = decode_to_cache(encoded, SPEC, cache_dir=tmp_path / "cache", workers=1)
    decoded = np.load(path, mmap_mode="r", allow_pickle=False)
    expected, modes = load_images(list(encoded.files), image_size=8)
    assert decoded.shape == (9, 8, 8, 3) and np.array_equal(decoded, expected)
    assert stats.count == 9 and stats.modes == modes == {"RGB": 9} and not stats.cache_hit


def test_second_decode_is_a_cache_hit_that_decodes_nothing(tmp_path, monkeypatch):
    root, encoded = _folder(tmp_path)
    first, _ = decode_to_cache(encoded, SPEC, cache_dir=tmp_path / "cache", workers=1)

    def refuse(*args, **kwargs):
        raise AssertionError("decoded on a cache hit")

    monkeypatch.setattr(decode, "decode_image", refuse)
    again, stats = decode_to_cache(encoded, SPEC, cache_dir=tmp_path / "cache", workers=1)
    assert again == first and stats.cache_hit and stats.modes == {"RGB": 9}
    # another size, or an edited file, is another key (and so decodes)
    with pytest.raises(AssertionError, match="decoded on a cache hit"):
        decode_to_cache(encoded, Preprocess((6, 6)), cache_dir=tmp_path / "cache", workers=1)
    write_image(root / "cat" / "cat_00.png", seed=999)
    with pytest.raises(AssertionError, match="decoded on a cache hit"):
        decode_to_cache(encoded, SPEC, cache_dir=tmp_path / "cache", workers=1)


def test_process_pool_gives_the_serial_result(tmp_path):
    _, encoded = _folder(tmp_path, {"a": 7, "b": 6})
    serial, _ = decode_to_cache(encoded, SPEC, cache_dir=tmp_path / "c1", workers=1)
    pooled, stats = decode_to_cache(
        encoded, SPEC, cache_dir=tmp_path / "c2", workers=2, chunk_size=4
    )
    assert stats.workers == 2
    assert np.array_equal(np.load(serial, allow_pickle=False), np.load(pooled, allow_pickle=False))


@pytest.mark.parametrize("workers", [1, 2])
def test_a_bad_file_in_a_worker_is_named_and_leaves_no_cache(tmp_path, workers):
    root, _ = _folder(tmp_path, {"a": 6, "b": 6})
    bad = root / "b" / "b_03.png"
    bad.write_bytes(bad.read_bytes()[:60])  # truncated
    encoded = load_source(params(source="imagefolder", path=str(root))).encoded
    with pytest.raises(InputDataError, match=r"photos/b/b_03.png: cannot decode .* completely"):
        decode_to_cache(encoded, SPEC, cache_dir=tmp_path / "cache", workers=workers, chunk_size=3)
    assert _leftovers(tmp_path / "cache") == []


def test_keeping_sizes_refuses_a_different_size_naming_the_file(tmp_path):
    root, _ = _folder(tmp_path, {"a": 2, "b": 2})
    write_image(root / "b" / "b_01.png", size=(20, 10))
    encoded = load_source(params(source="imagefolder", path=str(root))).encoded
    with pytest.raises(InputDataError, match=r"b/b_01.png: image is 20x10, expected 12x10"):
        decode_to_cache(encoded, Preprocess(None), cache_dir=tmp_path / "cache", workers=1)
    assert _leftovers(tmp_path / "cache") == []


def test_mixed_modes_are_counted_and_converted(tmp_path):
    root = image_folder(tmp_path / "photos", {"a": 2, "b": 1})
    write_image(root / "b" / "rgba.png", mode="RGBA")
    write_image(root / "b" / "grey.png", mode="L")
    write_image(root / "a" / "cmyk.jpg", mode="CMYK")
    encoded = load_source(params(source="imagefolder", path=str(root))).encoded
    path, stats = decode_to_cache(encoded, SPEC, cache_dir=tmp_path / "cache", workers=1)
    assert stats.modes == {"CMYK": 1, "L": 1, "RGB": 3, "RGBA": 1} and stats.converted == 3
    assert np.load(path, allow_pickle=False).shape == (6, 8, 8, 3)


def test_pack_blobs_decode_like_pillow(tmp_path):
    pack = fake_pack(tmp_path / "p.npz", n_train=10, n_test=3)
    encoded = load_source(params(source="cifar10", path=str(pack))).encoded.head(7)
    path, stats = decode_to_cache(encoded, Preprocess(None), cache_dir=tmp_path / "c", workers=1)
    decoded = np.load(path, allow_pickle=False)
    import io

    direct = np.stack([np.asarray(Image.open(io.BytesIO(encoded.item(i))).convert("RGB"))
                       for i in range(7)])  # fmt: skip
    assert decoded.shape == (7, 32, 32, 3) and np.array_equal(decoded, direct)
    assert stats.modes == {"RGB": 7}


def test_workers_zero_means_every_core(tmp_path, monkeypatch):
    _, encoded = _folder(tmp_path, {"a": 4, "b": 4})
    monkeypatch.setattr(decode, "available_cpus", lambda: 1)  # 1 core: decode in this process
    _, stats = decode_to_cache(encoded, SPEC, cache_dir=tmp_path / "c", workers=0, chunk_size=2)
    assert stats.workers == 1


def test_array_sources_are_only_transformed_when_asked():
    images = np.random.default_rng(0).integers(0, 255, (5, 6, 6, 1), dtype=np.uint8)
    same, stats = transform_array(images, Preprocess(None, channels=1))
    assert same is images and stats.modes == {"L": 5} and stats.converted == 0
    rgb, stats = transform_array(images, Preprocess((4, 4), channels=3))
    assert rgb.shape == (5, 4, 4, 3) and stats.converted == 5
    assert np.array_equal(rgb[..., 0], rgb[..., 2])  # grey -> RGB repeats the channel


def test_cache_files_are_only_the_array_and_its_record(tmp_path):
    _, encoded = _folder(tmp_path)
    path, _ = decode_to_cache(encoded, SPEC, cache_dir=tmp_path / "cache", workers=1)
    assert _leftovers(tmp_path / "cache") == sorted([path.name, path.with_suffix(".json").name])
    assert os.path.getsize(path) == 128 + 9 * 8 * 8 * 3  # header + pixels, nothing else


def test_row_reads_and_copies_equal_fancy_indexing(tmp_path):
    from noisyflow.data.store import copy_rows, read_rows

    array = np.random.default_rng(1).integers(0, 255, (50, 3, 2, 3), dtype=np.uint8)
    np.save(tmp_path / "a.npy", array)
    rows = np.array([0, 1, 2, 7, 9, 10, 11, 30, 49])
    assert np.array_equal(read_rows(tmp_path / "a.npy", rows), array[rows])
    copy_rows(tmp_path / "a.npy", rows, tmp_path / "b.npy", chunk=4)
    copied = np.load(tmp_path / "b.npy", mmap_mode="r", allow_pickle=False)
    assert np.array_equal(copied, array[rows])
    with pytest.raises(IndexError, match="rows outside 0..49"):
        read_rows(tmp_path / "a.npy", np.array([3, 50]))
