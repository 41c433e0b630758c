import os
from pathlib import Path

import numpy as np
import pytest

from noisyflow.data.sources import SOURCES, load_source
from noisyflow.errors import InputDataError
from tests.helpers import CIFAR_PACK
from tests.unit.imagefiles import fake_pack, image_folder, params, write_csv, write_image


def test_registry_names_every_source():
    assert sorted(SOURCES) == ["cifar10", "csv", "digits", "imagefolder", "npz"]


def test_digits_is_curated_uint8_nhwc():
    src = load_source(params())
    assert src.images.shape == (1797, 8, 8, 1) and src.images.dtype == np.uint8
    assert src.images.max() == 255 and src.classes == tuple("0123456789")
    assert src.labels_are_clean and src.paths is None
    assert np.array_equal(src.index, np.arange(1797))


# ---------------------------------------------------------------- npz


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def test_npz_with_classes_and_nhw_images(tmp_path):
    x = np.random.default_rng(0).integers(0, 255, (20, 6, 6), dtype=np.uint8)
    path = _npz(tmp_path / "d.npz", x=x, y=np.arange(20) % 4, classes=np.array(list("abcd")))
    src = load_source(params(source="npz", path=path))
    assert src.images.shape == (20, 6, 6, 1) and src.classes == ("a", "b", "c", "d")
    assert src.labels.tolist() == (np.arange(20) % 4).tolist() and not src.labels_are_clean


def test_npz_without_classes_needs_data_classes_never_max_label(tmp_path):
    path = _npz(tmp_path / "d.npz", x=np.zeros((4, 3, 3), np.uint8), y=np.array([0, 1, 1, 3000]))
    with pytest.raises(InputDataError, match=r"d.npz: the npz has integer labels.*data.classes"):
        load_source(params(source="npz", path=path))
    with pytest.raises(InputDataError, match=r"d.npz 'y': row 3 has label 3000, expected 0..1"):
        load_source(params(source="npz", path=path, classes=("cat", "dog")))
    ok = _npz(tmp_path / "ok.npz", x=np.zeros((4, 3, 3), np.uint8), y=np.array([0, 1, 1, 0]))
    assert load_source(params(source="npz", path=ok, classes=("cat", "dog"))).classes == (
        "cat",
        "dog",
    )


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.zeros((5, 4, 4), np.uint8), "y": np.array([0, 1, 0])}, "5 images in 'x' but 3"),
        ({"x": np.zeros((5, 4, 4), np.float32), "y": np.zeros(5, int)}, "expected uint8"),
        ({"x": np.zeros((5, 4, 4, 2), np.uint8), "y": np.zeros(5, int)}, "C = 1 or 3"),
        ({"x": np.zeros((5, 4, 4), np.uint8), "y": np.zeros(5)}, "expected \\(N,\\) integers"),
        ({"images": np.zeros((5, 4, 4), np.uint8)}, r"missing array\(s\) x, y"),
        ({"x": np.zeros((0, 4, 4), np.uint8), "y": np.zeros(0, int)}, "empty data set"),
    ],
)
def test_bad_npz_inputs_name_the_file_and_problem(tmp_path, arrays, message):
    path = _npz(tmp_path / "bad.npz", classes=np.array(["a", "b"]), **arrays)
    with pytest.raises(InputDataError, match=rf"bad.npz.*{message}"):
        load_source(params(source="npz", path=path))


def test_data_classes_must_agree_with_the_source_names(tmp_path):
    path = _npz(tmp_path / "d.npz", x=np.zeros((2, 3, 3), np.uint8), y=np.array([0, 1]),
                classes=np.array(["a", "b"]))  # fmt: skip
    with pytest.raises(InputDataError, match=r"classes \['a', 'b'\] disagree with data.classes"):
        load_source(params(source="npz", path=path, classes=("b", "a")))


def test_missing_npz_is_named(tmp_path):
    with pytest.raises(InputDataError, match=r"nope.npz: not found; expected a file \(data.path\)"):
        load_source(params(source="npz", path=str(tmp_path / "nope.npz")))


# ---------------------------------------------------------------- imagefolder


def test_imagefolder_lists_sorted_classes_and_files_recursively(tmp_path):
    root = image_folder(tmp_path / "photos", {"dog": 2, "cat": 3})
    write_image(root / "cat" / "nested" / "deep.JPG")  # recursive, extension case-insensitive
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "dog" / ".hidden.png").write_bytes(b"")
    (root / "README.md").write_text("top-level files are not classes")
    (root / ".cache").mkdir()
    src = load_source(params(source="imagefolder", path=str(root)))
    assert src.classes == ("cat", "dog")
    assert src.paths.tolist() == [
        "cat/cat_00.png",
        "cat/cat_01.png",
        "cat/cat_02.png",
        "cat/nested/deep.JPG",
        "dog/dog_00.png",
        "dog/dog_01.png",
    ]
    assert src.labels.tolist() == [0, 0, 0, 0, 1, 1] and src.index.tolist() == list(range(6))
    assert src.label_format == "names" and src.true_labels is None
    assert Path(src.encoded.files[4]) == (root / "dog" / "dog_00.png").resolve()
    assert src.encoded.name(4) == f"{root}/dog/dog_00.png"


def test_imagefolder_class_folder_without_images_is_named(tmp_path):
    root = image_folder(tmp_path / "photos", {"cat": 2})
    (root / "dog").mkdir()
    (root / "dog" / "readme.txt").write_text("x")
    with pytest.raises(InputDataError, match=r"photos/dog: class folder has no images; expected"):
        load_source(params(source="imagefolder", path=str(root)))


def test_imagefolder_without_class_folders_is_an_empty_data_set(tmp_path):
    root = tmp_path / "flat"
    write_image(root / "a.png")
    with pytest.raises(InputDataError, match=r"flat: empty data set \(no class folders"):
        load_source(params(source="imagefolder", path=str(root)))


def test_imagefolder_symlink_out_of_the_root_is_refused(tmp_path):
    root = image_folder(tmp_path / "photos", {"cat": 2, "dog": 2})
    os.symlink(write_image(tmp_path / "elsewhere.png"), root / "cat" / "sneaky.png")
    with pytest.raises(InputDataError, match=r"cat/sneaky.png.*outside the data root"):
        load_source(params(source="imagefolder", path=str(root)))


def test_imagefolder_symlinks_inside_the_root_are_followed(tmp_path):
    root = image_folder(tmp_path / "photos", {"cat": 2, "dog": 2})
    os.symlink(root / "cat" / "cat_00.png", root / "dog" / "dog_zz.png")
    os.symlink(root / "dog", root / "dog" / "loop")  # a loop is visited once
    src = load_source(params(source="imagefolder", path=str(root)))
    assert src.paths.tolist()[-1] == "dog/dog_zz.png" and len(src) == 5


def test_imagefolder_missing_root(tmp_path):
    with pytest.raises(InputDataError, match=r"nowhere: not found; expected a folder"):
        load_source(params(source="imagefolder", path=str(tmp_path / "nowhere")))


# ---------------------------------------------------------------- csv


def _images(folder, names):
    for k, name in enumerate(names):
        write_image(folder / name, seed=k)


def test_csv_with_class_names(tmp_path):
    _images(tmp_path, ["a.png", "b.png", "sub/c.png"])
    path = write_csv(tmp_path / "l.csv", ["path", "label", "note"],
                     [["a.png", "dog", "x"], ["b.png", "cat", ""], ["sub/c.png", "dog", "y"]])  # fmt: skip
    src = load_source(params(source="csv", path=str(path)))
    assert src.classes == ("cat", "dog") and src.labels.tolist() == [1, 0, 1]
    assert src.paths.tolist() == ["a.png", "b.png", "sub/c.png"] and src.label_format == "names"
    assert src.index.tolist() == [0, 1, 2] and src.true_labels is None


def test_csv_integer_labels_need_data_classes(tmp_path):
    _images(tmp_path, ["a.png", "b.png"])
    path = write_csv(tmp_path / "l.csv", ["path", "label"], [["a.png", 1], ["b.png", 0]])
    with pytest.raises(
        InputDataError, match=r"l.csv: column 'label' has integer labels.*data.classes"
    ):
        load_source(params(source="csv", path=str(path)))
    src = load_source(params(source="csv", path=str(path), classes=("x", "y")))
    assert src.labels.tolist() == [1, 0] and src.label_format == "integers"


def test_csv_integer_label_out_of_range_names_the_row(tmp_path):
    _images(tmp_path, ["a.png", "b.png"])
    path = write_csv(tmp_path / "l.csv", ["path", "label"], [["a.png", 1], ["b.png", 7]])
    with pytest.raises(
        InputDataError, match=r"l.csv: data row 2 \(line 3.*label 7 is out of range; expected 0..1"
    ):
        load_source(params(source="csv", path=str(path), classes=("x", "y")))


def test_csv_unknown_class_names_the_data_row(tmp_path):
    _images(tmp_path, ["a.png", "b.png", "c.png"])
    rows = [["a.png", "cat"], ["b.png", "dgo"], ["c.png", "dog"]]
    path = write_csv(tmp_path / "l.csv", ["path", "label"], rows)
    with pytest.raises(InputDataError) as err:
        load_source(params(source="csv", path=str(path), classes=("cat", "dog")))
    msg = str(err.value)
    assert (
        "l.csv: data row 2 (line 3" in msg and "'dgo'" in msg and "expected one of cat, dog" in msg
    )


@pytest.mark.parametrize(
    ("cols", "message"),
    [
        ({"path_column": "file"}, r"missing column\(s\) 'file'; found 'path', 'label'"),
        ({"label_column": "class"}, r"missing column\(s\) 'class'; found 'path', 'label'"),
        ({"true_label_column": "audited"}, r"missing column\(s\) 'audited'"),
    ],
)
def test_csv_missing_columns_are_named(tmp_path, cols, message):
    _images(tmp_path, ["a.png"])
    path = write_csv(tmp_path / "l.csv", ["path", "label"], [["a.png", "cat"]])
    with pytest.raises(InputDataError, match=rf"l.csv: {message}"):
        load_source(params(source="csv", path=str(path), csv=cols))


def test_csv_path_listed_twice_names_both_rows(tmp_path):
    _images(tmp_path, ["a.png", "b.png"])
    rows = [["a.png", "cat"], ["b.png", "dog"], ["./a.png", "dog"]]
    path = write_csv(tmp_path / "l.csv", ["path", "label"], rows)
    with pytest.raises(
        InputDataError,
        match=r"data row 3 \(line 4.*'./a.png' is listed again \(first at data row 1\)",
    ):
        load_source(params(source="csv", path=str(path)))


@pytest.mark.parametrize(
    ("listed", "message"),
    [
        ("missing.png", r"image 'missing.png' not found under"),
        ("../outside.png", "outside the data root"),
        ("ABSOLUTE", "outside the data root"),
        ("link.png", "outside the data root"),
        ("", r"empty 'path'; expected an image path"),
    ],
)
def test_csv_bad_paths_name_the_row(tmp_path, listed, message):
    data = tmp_path / "data"
    _images(data, ["a.png"])
    outside = write_image(tmp_path / "outside.png")
    os.symlink(outside, data / "link.png")
    listed = str(outside) if listed == "ABSOLUTE" else listed
    path = write_csv(data / "l.csv", ["path", "label"], [["a.png", "cat"], [listed, "dog"]])
    with pytest.raises(InputDataError, match=rf"l.csv: data row 2 \(line 3.*{message}"):
        load_source(params(source="csv", path=str(path)))


def test_csv_blank_label_and_ragged_row_are_named(tmp_path):
    _images(tmp_path, ["a.png", "b.png"])
    path = write_csv(tmp_path / "l.csv", ["path", "label"], [["a.png", "cat"], ["b.png", " "]])
    with pytest.raises(InputDataError, match=r"data row 2 .*empty 'label'"):
        load_source(params(source="csv", path=str(path)))
    (tmp_path / "r.csv").write_text("path,label\na.png,cat,extra\n")
    with pytest.raises(
        InputDataError, match=r"r.csv: data row 1 \(line 2.*3 field\(s\), expected 2"
    ):
        load_source(params(source="csv", path=str(tmp_path / "r.csv")))


def test_csv_header_only_is_an_empty_data_set(tmp_path):
    path = write_csv(tmp_path / "l.csv", ["path", "label"], [])
    with pytest.raises(InputDataError, match=r"l.csv: empty data set \(no data rows"):
        load_source(params(source="csv", path=str(path)))


def test_csv_true_label_column_blank_means_unaudited(tmp_path):
    _images(tmp_path, ["a.png", "b.png", "c.png"])
    rows = [["a.png", "cat", "dog"], ["b.png", "dog", ""], ["c.png", "dog", "dog"]]
    path = write_csv(tmp_path / "l.csv", ["path", "label", "checked"], rows)
    src = load_source(params(source="csv", path=str(path), csv={"true_label_column": "checked"}))
    assert src.labels.tolist() == [0, 1, 1] and src.true_labels.tolist() == [1, -1, 1]


def test_csv_semicolons_bom_and_root(tmp_path):
    _images(tmp_path / "pics", ["a.png", "b.png"])
    text = "\ufeffpath;label\na.png;cat\nb.png;dog\n"
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "l.csv").write_text(text, encoding="utf-8")
    src = load_source(params(source="csv", path=str(tmp_path / "meta" / "l.csv"),
                             root=str(tmp_path / "pics")))  # fmt: skip
    assert src.labels.tolist() == [0, 1]
    assert Path(src.encoded.files[1]) == (tmp_path / "pics" / "b.png").resolve()


def test_csv_relative_paths_resolve_against_the_project_base(tmp_path):
    _images(tmp_path / "data", ["a.png", "b.png"])
    write_csv(tmp_path / "data" / "l.csv", ["path", "label"], [["a.png", "x"], ["b.png", "y"]])
    src = load_source(params(source="csv", path="data/l.csv"), base=tmp_path)
    assert src.origin == f"{tmp_path}/data/l.csv" and len(src) == 2


# ---------------------------------------------------------------- cifar10


def test_cifar10_pack_train_and_test_splits():
    if not CIFAR_PACK.is_file():
        pytest.skip("shared CIFAR-10 pack not available")
    train = load_source(params(source="cifar10", path=str(CIFAR_PACK)))
    test = load_source(params(source="cifar10", path=str(CIFAR_PACK)), split="test")
    assert len(train) == 50_000 and len(test) == 10_000 and train.labels_are_clean
    assert train.classes[:3] == ("airplane", "automobile", "bird")
    assert len(train.encoded) == 50_000 and train.images is None
    assert np.bincount(train.labels).tolist() == [5000] * 10
    assert len(train.head(100).encoded) == 100


def test_cifar10_format_pack_checks(tmp_path):
    pack = fake_pack(tmp_path / "p.npz", n_train=12, n_test=6, num_classes=4)
    src = load_source(params(source="cifar10", path=str(pack)))
    assert len(src) == 12 and src.classes == ("class0", "class1", "class2", "class3")
    assert src.encoded.item(3)[:2] == b"\xff\xd8"  # JPEG bytes
    with pytest.raises(InputDataError, match=r"p.npz: classes .* disagree with data.classes"):
        load_source(params(source="cifar10", path=str(pack), classes=("a", "b", "c", "d")))


def test_a_test_split_needs_a_test_set():
    with pytest.raises(InputDataError, match="data.test_path: not set"):
        load_source(params(), split="test")


def test_params_refuse_combinations_no_source_can_read():
    from noisyflow.errors import ParamsError

    with pytest.raises(ParamsError, match="data.test_path: digits has no separate test set"):
        params(test_path="t.npz")
    with pytest.raises(ParamsError, match=r"data.labels_path: 'l.txt'; expected a .csv"):
        params(labels_path="l.txt")
    with pytest.raises(ParamsError, match="data.path: required when data.source is 'csv'"):
        params(source="csv")
