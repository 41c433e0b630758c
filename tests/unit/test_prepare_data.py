import json
import os
from pathlib import Path

import numpy as np
import pytest

from noisyflow.data import decode
from noisyflow.data.fingerprint import fingerprint
from noisyflow.data.prepare import load_prepared, prepare_dataset
from noisyflow.data.sources import load_source
from noisyflow.errors import InputDataError
from tests.unit.imagefiles import (
    fake_pack,
    image_folder,
    labelled_csv,
    params,
    png_declaring,
    write_csv,
    write_image,
)

COUNTS = {"bird": 6, "cat": 6, "dog": 6}


def _prepare(data, tmp_path, name="prepared", **kw):
    kw.setdefault("workers", 1)
    return prepare_dataset(data, tmp_path / name, cache_dir=tmp_path / "cache", **kw)


def _folder_params(tmp_path, **kw):
    root = image_folder(tmp_path / "photos", COUNTS)
    kw.setdefault("test_size", 3)
    kw.setdefault("image_size", 8)
    return root, params(source="imagefolder", path=str(root), **kw)


def _nothing_left(tmp_path, name="prepared"):
    left = [p.name for p in tmp_path.iterdir() if p.name.startswith((name, f".{name}"))]
    cache = tmp_path / "cache"
    tmp_cache = [p.name for p in cache.iterdir() if p.suffix == ".tmp"] if cache.exists() else []
    return left + tmp_cache == []


# ---------------------------------------------------------------- outputs


def test_imagefolder_prepares_memory_maps_that_point_back_at_the_files(tmp_path):
    root, data = _folder_params(tmp_path)
    prepared = _prepare(data, tmp_path)
    out = tmp_path / "prepared"
    assert sorted(p.name for p in out.iterdir()) == [
        "meta.json", "test.npz", "test_x.npy", "train.npz", "train_x.npy",
    ]  # fmt: skip
    assert prepared.classes == ("bird", "cat", "dog")
    assert len(prepared.train) == 15 and len(prepared.test) == 3
    assert isinstance(prepared.train.x, np.memmap) and prepared.train.x.mode == "r"
    assert prepared.train.x.shape == (15, 8, 8, 3)
    # every training row maps back to the sorted listing: same file, same label, same pixels
    source = load_source(data)
    for k, row in enumerate(prepared.train.index):
        assert prepared.train.paths[k] == source.paths[row]
        assert prepared.train.labels[k] == source.labels[row]
        assert (root / prepared.train.paths[k]).parent.name == prepared.classes[prepared.labels[k]]
    assert np.all(np.diff(prepared.train.index) > 0)  # rows sorted by source row
    assert set(prepared.train.index) | set(prepared.test.index) == set(range(18))
    assert np.bincount(prepared.test.labels).tolist() == [1, 1, 1]  # stratified
    meta = prepared.meta
    assert meta["truth"] == "none" and prepared.train.true_labels is None
    assert "cannot be scored" in meta["truth_note"]
    assert meta["source"] == {
        "type": "imagefolder", "path": str(root), "root": str(root), "csv": None,
        "test_path": None, "labels_path": None, "subset": None, "rows": 18,
        "label_format": "names", "labels_are_clean": False, "has_paths": True,
    }  # fmt: skip
    assert meta["preprocessing"] == {
        "image_size": 8, "size": [8, 8], "resize": "crop", "channels": 3,
        "max_pixels": 89_478_485,
    }  # fmt: skip
    assert meta["decode"]["train"] == {"count": 18, "modes": {"RGB": 18}, "converted": 0}
    assert meta["counts"] == {"train": 15, "test": 3} and meta["image_shape"] == [8, 8, 3]


def test_train_pixels_are_the_decoded_source_rows(tmp_path):
    root, data = _folder_params(tmp_path)
    prepared = _prepare(data, tmp_path)
    from noisyflow.data.images import load_images

    files = [root / p for p in prepared.test.paths]
    expected, _ = load_images(files, image_size=8)
    assert np.array_equal(prepared.test.x, expected)


def test_csv_with_an_audited_column_scores_only_audited_rows(tmp_path):
    path, rows = labelled_csv(tmp_path / "data", COUNTS)
    header = ["path", "label", "checked"]
    audited = [[p, lab, lab if k % 3 == 0 else ""] for k, (p, lab) in enumerate(rows)]
    audited[3][1] = "dog"  # a wrong given label whose truth is known ("bird" audited)
    write_csv(path, header, audited)
    data = params(source="csv", path=str(path), test_size=3, image_size=8,
                  csv={"true_label_column": "checked"})  # fmt: skip
    prepared = _prepare(data, tmp_path)
    truth = prepared.train.true_labels
    known = truth >= 0
    assert prepared.meta["truth"] == "partial" and 0 < known.sum() < len(truth)
    assert "'checked'" in prepared.meta["truth_note"]
    assert prepared.meta["truth_rows"]["train"] == int(known.sum())
    realised = prepared.meta["noise"]["realised_rate"]
    assert realised == pytest.approx((prepared.labels[known] != truth[known]).mean(), abs=1e-6)
    assert realised > 0  # the wrong row 3 is audited
    assert prepared.meta["source"]["csv"]["true_label_column"] == "checked"
    assert prepared.meta["source"]["root"] == str(tmp_path / "data")


def test_injected_noise_makes_the_labels_before_it_the_reference(tmp_path):
    root, data = _folder_params(tmp_path, noise={"type": "symmetric", "rate": 0.4, "seed": 1})
    prepared = _prepare(data, tmp_path)
    source = load_source(data)
    assert prepared.meta["truth"] == "all"
    assert np.array_equal(prepared.train.true_labels, source.labels[prepared.train.index])
    flipped = prepared.train.noise_mask
    assert flipped.sum() == 6 and prepared.meta["noise"]["realised_rate"] == pytest.approx(0.4)
    assert np.array_equal(prepared.test.labels, source.labels[prepared.test.index])  # clean


def test_val_split_is_stratified_out_of_train_and_keeps_noisy_labels(tmp_path):
    _, data = _folder_params(tmp_path, val_size=3, noise={"type": "symmetric", "rate": 0.5})
    prepared = _prepare(data, tmp_path)
    assert len(prepared.train) == 12 and len(prepared.val) == 3 and len(prepared.test) == 3
    assert np.bincount(prepared.val.true_labels).tolist() == [1, 1, 1]
    indexes = [set(s.index.tolist()) for s in (prepared.train, prepared.val, prepared.test)]
    assert sum(len(s) for s in indexes) == len(set.union(*indexes)) == 18
    noisy_train_val = np.concatenate([prepared.train.noise_mask, prepared.val.noise_mask])
    assert noisy_train_val.sum() == round(0.5 * 15)  # one injection over train + val
    assert prepared.meta["noise"]["val_realised_rate"] == pytest.approx(
        prepared.val.noise_mask.mean()
    )
    assert prepared.val.x.shape == (3, 8, 8, 3)


def test_subset_keeps_the_first_rows(tmp_path):
    prepared = _prepare(params(subset=300, test_size=50), tmp_path)
    rows = np.concatenate([prepared.train.index, prepared.test.index])
    assert sorted(rows.tolist()) == list(range(300)) and prepared.meta["source"]["subset"] == 300
    with pytest.raises(InputDataError, match=r"data.subset: 5000 exceeds the 1797 images"):
        _prepare(params(subset=5000), tmp_path, name="too_many")
    assert _nothing_left(tmp_path, "too_many")


def test_digits_default_is_curated_and_array_sources_write_npy(tmp_path):
    prepared = _prepare(params(noise={"type": "asymmetric", "rate": 0.4}), tmp_path)
    assert prepared.meta["truth"] == "all" and prepared.train.paths is None
    assert prepared.train.x.shape == (1297, 8, 8, 1) and isinstance(prepared.train.x, np.memmap)
    digits = load_source(params())
    assert np.array_equal(prepared.train.x[5], digits.images[prepared.train.index[5]])
    assert np.array_equal(prepared.test.true_labels, digits.labels[prepared.test.index])


def test_array_source_resized_and_converted_on_request(tmp_path):
    prepared = _prepare(params(image_size=12, channels=3), tmp_path)
    assert prepared.train.x.shape == (1297, 12, 12, 3)
    assert prepared.meta["decode"]["train"]["converted"] == 1797


def test_instance_noise_through_prepare(tmp_path):
    data = params(noise={"type": "instance", "rate": 0.3, "seed": 2, "instance_std": 0.1})
    prepared = _prepare(data, tmp_path)
    rate = prepared.meta["noise"]["realised_rate"]
    assert abs(rate - 0.3) < 0.05  # 1297 rows: binomial sd ~0.013
    assert np.array_equal(prepared.labels, _prepare(data, tmp_path, "again").labels)


# ---------------------------------------------------------------- test sets, label files


def test_separate_test_folder_with_the_same_classes(tmp_path):
    root = image_folder(tmp_path / "train", COUNTS)
    test_root = image_folder(tmp_path / "test", {"bird": 2, "cat": 1, "dog": 2}, seed=500)
    data = params(source="imagefolder", path=str(root), test_path=str(test_root), image_size=8)
    prepared = _prepare(data, tmp_path)
    assert len(prepared.train) == 18 and prepared.test.labels.tolist() == [0, 0, 1, 2, 2]
    assert prepared.test.paths.tolist()[2] == "cat/cat_00.png"
    assert prepared.meta["split"]["test_from"] == "test_path"


def test_test_classes_differing_from_training_are_refused(tmp_path):
    root = image_folder(tmp_path / "train", COUNTS)
    test_root = image_folder(tmp_path / "test", {"bird": 2, "cow": 1, "dog": 2})
    data = params(source="imagefolder", path=str(root), test_path=str(test_root), image_size=8)
    with pytest.raises(InputDataError) as err:
        _prepare(data, tmp_path)
    msg = str(err.value)
    assert f"{test_root}: test classes" in msg and "not in training: cow" in msg
    assert "missing: cat" in msg and _nothing_left(tmp_path)


def test_csv_test_set_may_use_a_subset_of_the_class_names(tmp_path):
    path, _ = labelled_csv(tmp_path / "data", COUNTS)
    write_image(tmp_path / "data" / "t1.png", seed=70)
    write_image(tmp_path / "data" / "t2.png", seed=71)
    test = write_csv(tmp_path / "data" / "test.csv", ["path", "label"], [["t1.png", "dog"],
                                                                          ["t2.png", "cat"]])  # fmt: skip
    data = params(source="csv", path=str(path), test_path=str(test), image_size=8)
    prepared = _prepare(data, tmp_path)
    assert prepared.test.labels.tolist() == [2, 1] and len(prepared.train) == 18


def test_labels_path_npy_replaces_labels_and_curated_ones_become_truth(tmp_path):
    digits = load_source(params())
    relabelled = digits.labels.copy()
    relabelled[:100] = (relabelled[:100] + 1) % 10
    np.save(tmp_path / "new.npy", relabelled)
    data = params(labels_path=str(tmp_path / "new.npy"))
    prepared = _prepare(data, tmp_path)
    assert np.array_equal(prepared.labels, relabelled[prepared.train.index])
    assert np.array_equal(prepared.train.true_labels, digits.labels[prepared.train.index])
    assert prepared.meta["truth"] == "all" and "data.labels_path" in prepared.meta["truth_note"]
    changed = (prepared.train.index < 100).mean()
    assert prepared.meta["noise"]["realised_rate"] == pytest.approx(changed, abs=1e-6)


def test_labels_path_csv_with_names_on_an_image_folder(tmp_path):
    _, data = _folder_params(tmp_path)
    rows = [[i, "dog" if i == 0 else ["bird", "cat", "dog"][i // 6]] for i in range(18)]
    write_csv(tmp_path / "fixed.csv", ["index", "label"], rows[::-1])  # any row order
    data = params(**{**data.__dict__, "labels_path": str(tmp_path / "fixed.csv"),
                     "noise": {"type": "none"}, "csv": {}})  # fmt: skip
    prepared = _prepare(data, tmp_path)
    labels = dict(zip(prepared.train.index.tolist(), prepared.labels.tolist(), strict=True))
    labels.update(zip(prepared.test.index.tolist(), prepared.test.labels.tolist(), strict=True))
    assert labels[0] == 2 and labels[1] == 0 and labels[17] == 2
    assert prepared.meta["truth"] == "none"  # the folder's labels are not curated


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (np.arange(1796) % 10, r"new.npy: 1796 labels, expected 1797 \(one per row of digits"),
        (np.full(1797, 10), r"new.npy: row 0 has label 10, expected 0..9"),
        (np.zeros(1797), r"new.npy: labels must be a 1-D integer array, got float64 \(1797,\)"),
        (
            "index,label\n0,3\n5000,1\n",
            r"new.csv: data row 2 \(line 3.*unknown index 5000; expected a source row 0..1796",
        ),
        ("index,label\n0,three\n", r"new.csv: data row 1 \(line 2.*unknown class 'three'"),
        ("index,label\n0,3\n0,4\n", r"new.csv: data row 2 .*index 0 repeats data row 1"),
        ("index,label\n0,3\n1,4\n", r"new.csv: no label for index 2 \(1795 of the 1797 rows"),
        ("row,label\n0,3\n", r"new.csv: missing column\(s\) 'index'"),
    ],
)
def test_bad_label_files_are_named_and_leave_nothing(tmp_path, content, message):
    if isinstance(content, str):
        path = tmp_path / "new.csv"
        path.write_text(content)
    else:
        path = tmp_path / "new.npy"
        np.save(path, content)
    with pytest.raises(InputDataError, match=message):
        _prepare(params(labels_path=str(path)), tmp_path)
    assert _nothing_left(tmp_path)


# ---------------------------------------------------------------- cifar10 format


def test_cifar10_pack_uses_its_own_test_split(tmp_path):
    pack = fake_pack(tmp_path / "pack.npz", n_train=40, n_test=20)
    data = params(source="cifar10", path=str(pack), subset=30, val_size=10,
                  noise={"type": "asymmetric", "rate": 0.5, "map": "cifar10"})  # fmt: skip
    prepared = _prepare(data, tmp_path)
    assert len(prepared.train) == 20 and len(prepared.val) == 10 and len(prepared.test) == 20
    assert prepared.meta["split"]["test_from"] == "pack" and prepared.meta["truth"] == "all"
    assert np.array_equal(prepared.test.true_labels, np.arange(20) % 10)
    assert prepared.meta["decode"]["train"]["count"] == 30  # only the subset is decoded
    flips = prepared.train.noise_mask | False
    pairs = {(int(t), int(g)) for t, g in zip(prepared.train.true_labels[flips],
                                               prepared.labels[flips], strict=True)}  # fmt: skip
    assert pairs <= {(9, 1), (2, 0), (4, 7), (3, 5), (5, 3)}


# ---------------------------------------------------------------- cache and reproducibility


def test_second_prepare_reads_the_cache_and_decodes_nothing(tmp_path, monkeypatch):
    _, data = _folder_params(tmp_path)
    first = _prepare(data, tmp_path)
    assert first.meta["decode_run"]["train"]["cache_hit"] is False

    def refuse(*args, **kwargs):
        raise AssertionError("decoded on a cache hit")

    monkeypatch.setattr(decode, "decode_image", refuse)
    second = _prepare(data, tmp_path, "again", stats_path=tmp_path / "stats.json")
    assert second.meta["decode_run"]["train"]["cache_hit"] is True
    assert json.loads((tmp_path / "stats.json").read_text())["train"]["cache_hit"] is True
    assert np.array_equal(first.train.x, second.train.x)


def test_same_params_give_byte_identical_outputs(tmp_path):
    _, data = _folder_params(tmp_path, val_size=3, noise={"type": "symmetric", "rate": 0.3})
    _prepare(data, tmp_path, "a")  # cold
    prepare_dataset(data, tmp_path / "b", cache_dir=tmp_path / "other", workers=2)  # cold, pool
    _prepare(data, tmp_path, "c")  # warm
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert "val_x.npy" in names
    for other in ("b", "c"):
        assert sorted(p.name for p in (tmp_path / other).iterdir()) == names
        for name in names:
            assert (tmp_path / "a" / name).read_bytes() == (tmp_path / other / name).read_bytes(), (
                name
            )


def test_a_rerun_replaces_the_previous_output_only_on_success(tmp_path):
    root, data = _folder_params(tmp_path)
    _prepare(data, tmp_path)
    before = (tmp_path / "prepared" / "meta.json").read_bytes()
    write_image(root / "cat" / "cat_03.png").write_bytes(b"broken")
    with pytest.raises(InputDataError, match="cat_03.png"):
        _prepare(data, tmp_path)
    assert (tmp_path / "prepared" / "meta.json").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".prepared")] == []


# ---------------------------------------------------------------- validation


def _broken_folder(tmp_path, case):
    root = image_folder(tmp_path / "photos", COUNTS)
    kw = {}
    if case == "truncated":
        path = write_image(root / "cat" / "cat_02.png", size=(64, 64))
        path.write_bytes(path.read_bytes()[:200])
        expect = r"photos/cat/cat_02.png: cannot decode .* completely"
    elif case == "not_an_image":
        (root / "dog" / "dog_01.png").write_text("hello")
        expect = r"photos/dog/dog_01.png: not an image Pillow can read"
    elif case == "bomb":
        png_declaring(root / "bird" / "bird_04.png", 50_000, 50_000)
        expect = r"photos/bird/bird_04.png: declares 50000x50000 = 2,500,000,000 pixels, over data.max_pixels"
    elif case == "empty_class":
        (root / "emu").mkdir()
        expect = r"photos/emu: class folder has no images"
    elif case == "symlink_out":
        os.symlink(write_image(tmp_path / "secret.png"), root / "dog" / "x.png")
        expect = r"photos/dog/x.png.*outside the data root"
    elif case == "one_sample_class":
        write_image(root / "emu" / "only.png")
        expect = (
            r"data.test_size: class 'emu' has 1 sample\(s\); a stratified split needs at least 2"
        )
    elif case == "test_size_below_classes":
        kw["test_size"] = 2
        expect = r"data.test_size: 2 is smaller than the 3 classes"
    elif case == "val_too_big":
        kw["val_size"] = 14
        expect = r"data.val_size: 14 leaves 1 samples for 3 classes"
    return params(source="imagefolder", path=str(root), test_size=kw.get("test_size", 3),
                  val_size=kw.get("val_size", 0), image_size=8), expect  # fmt: skip


@pytest.mark.parametrize(
    "case",
    [
        "truncated",
        "not_an_image",
        "bomb",
        "empty_class",
        "symlink_out",
        "one_sample_class",
        "test_size_below_classes",
        "val_too_big",
    ],
)
@pytest.mark.parametrize("workers", [1, 2])
def test_broken_folders_fail_clearly_and_leave_nothing(tmp_path, case, workers):
    if workers == 2 and case not in ("truncated", "not_an_image", "bomb"):
        pytest.skip("checked before decoding: the pool is not involved")
    data, expect = _broken_folder(tmp_path, case)
    with pytest.raises(InputDataError, match=expect):
        _prepare(data, tmp_path, workers=workers)
    assert _nothing_left(tmp_path)


@pytest.mark.parametrize(
    ("rows", "header", "expect"),
    [
        (
            [["images/bird_00.png", "emu"]],
            None,
            r"labels.csv: data row 19 \(line 20.*unknown class 'emu'",
        ),
        (
            [["images/bird_00.png", "bird"]],
            None,
            r"data row 19 .*'images/bird_00.png' is listed again",
        ),
        ([["../x.png", "bird"]], None, r"data row 19 .*outside the data root"),
        ([], ["file", "label"], r"labels.csv: missing column\(s\) 'path'; found 'file', 'label'"),
        ([], ["path", "class"], r"missing column\(s\) 'label'; found 'path', 'class'"),
    ],
)
def test_broken_csvs_fail_clearly_and_leave_nothing(tmp_path, rows, header, expect):
    path, good = labelled_csv(tmp_path / "data", COUNTS)
    write_csv(path, header or ["path", "label"], good + rows)
    data = params(source="csv", path=str(path), test_size=3, image_size=8,
                  classes=("bird", "cat", "dog"))  # fmt: skip
    with pytest.raises(InputDataError, match=expect):
        _prepare(data, tmp_path)
    assert _nothing_left(tmp_path)


def test_empty_data_sets_are_refused(tmp_path):
    csv_path = write_csv(tmp_path / "empty.csv", ["path", "label"], [])
    with pytest.raises(InputDataError, match=r"empty.csv: empty data set"):
        _prepare(params(source="csv", path=str(csv_path)), tmp_path)
    (tmp_path / "nothing").mkdir()
    with pytest.raises(InputDataError, match=r"nothing: empty data set"):
        _prepare(params(source="imagefolder", path=str(tmp_path / "nothing")), tmp_path)
    assert _nothing_left(tmp_path)


def test_labels_out_of_range_in_an_npz(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((6, 4, 4), np.uint8), y=np.array([0, 1, 0, 1, 2, 0]),
             classes=np.array(["a", "b"]))  # fmt: skip
    with pytest.raises(InputDataError, match=r"d.npz 'y': row 4 has label 2, expected 0..1"):
        _prepare(params(source="npz", path=str(tmp_path / "d.npz")), tmp_path)
    assert _nothing_left(tmp_path)


# ---------------------------------------------------------------- load_prepared checks


def test_load_prepared_checks_shapes_and_labels_against_meta(tmp_path):
    _, data = _folder_params(tmp_path)
    _prepare(data, tmp_path)
    out = tmp_path / "prepared"
    meta = json.loads((out / "meta.json").read_text())
    meta["counts"]["train"] = 14
    (out / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(
        InputDataError, match=r"prepared/train_x.npy: uint8 \(15, 8, 8, 3\), expected"
    ):
        load_prepared(out)
    meta["counts"]["train"], meta["classes"] = 15, ["bird", "cat"]
    (out / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(InputDataError, match=r"prepared/train.npz: labels outside 0..1"):
        load_prepared(out)
    with pytest.raises(InputDataError, match="prepared data not found"):
        load_prepared(tmp_path / "missing")


# ---------------------------------------------------------------- fingerprint


def test_fingerprint_lists_every_input_and_changes_when_one_does(tmp_path):
    path, _ = labelled_csv(tmp_path / "data", {"a": 2, "b": 2})
    np.save(tmp_path / "labels.npy", np.array([0, 1, 0, 1]))
    data = params(source="csv", path="data/labels.csv", labels_path="labels.npy")
    first = fingerprint(data, tmp_path)
    assert json.loads(json.dumps(first)) == first
    names = [f[0] for f in first["files"]]
    assert names == ["data/labels.csv", "data/images/a_00.png", "data/images/a_01.png",
                     "data/images/b_00.png", "data/images/b_01.png", "labels.npy"]  # fmt: skip
    assert fingerprint(data, tmp_path) == first
    image = tmp_path / "data" / "images" / "b_00.png"
    os.utime(image, ns=(1, image.stat().st_mtime_ns + 1_000_000))
    assert fingerprint(data, tmp_path) != first


def test_fingerprint_of_folders_and_digits(tmp_path):
    root = image_folder(tmp_path / "photos", {"a": 1, "b": 2})
    data = params(source="imagefolder", path="photos")
    before = fingerprint(data, tmp_path)
    assert [f[0] for f in before["files"]] == ["photos/a/a_00.png", "photos/b/b_00.png",
                                               "photos/b/b_01.png"]  # fmt: skip
    write_image(root / "b" / "b_02.png")  # an added image changes it
    assert len(fingerprint(data, tmp_path)["files"]) == 4
    digits = fingerprint(params(), tmp_path)
    assert digits["files"] == [] and digits["sklearn"]


def test_prepare_resolves_paths_against_the_project(tmp_path):
    image_folder(tmp_path / "photos", COUNTS)
    data = params(source="imagefolder", path="photos", test_size=3, image_size=8)
    prepared = prepare_dataset(data, tmp_path / "out", cache_dir=tmp_path / "c", workers=1,
                               base=tmp_path)  # fmt: skip
    assert prepared.meta["source"]["path"] == "photos" and Path(tmp_path / "out").is_dir()


def test_outputs_and_cache_may_not_live_inside_the_image_folder(tmp_path):
    root, data = _folder_params(tmp_path)
    with pytest.raises(
        InputDataError, match=r"cache: the decode cache lies inside the data folder"
    ):
        prepare_dataset(data, tmp_path / "out", cache_dir=root / "cache", workers=1)
    with pytest.raises(InputDataError, match=r"prepared: the prepared output lies inside"):
        prepare_dataset(data, root / "prepared", cache_dir=tmp_path / "c", workers=1)
    assert sorted(p.name for p in root.iterdir()) == ["bird", "cat", "dog"]


def test_an_unreadable_image_listed_in_a_csv_names_the_file_and_its_row(tmp_path):
    path, _ = labelled_csv(tmp_path / "data", COUNTS)
    (tmp_path / "data" / "images" / "cat_02.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    data = params(source="csv", path=str(path), test_size=3, image_size=8)
    with pytest.raises(InputDataError, match=r"images/cat_02.png \(.*labels.csv data row 9\): "):
        _prepare(data, tmp_path)
    assert _nothing_left(tmp_path)
