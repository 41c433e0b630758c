import csv
import os

import numpy as np
import pytest

from noisyflow.artifacts import LABEL_ISSUE_COLUMNS
from noisyflow.data.export import export_labels
from noisyflow.data.prepare import prepare_dataset
from noisyflow.data.sources import load_source
from noisyflow.errors import InputDataError
from tests.unit.imagefiles import image_folder, labelled_csv, params, write_csv

COUNTS = {"bird": 5, "cat": 5, "dog": 5}


def _prepare(data, tmp_path):
    return prepare_dataset(data, tmp_path / "prepared", cache_dir=tmp_path / "cache", workers=1)


def _issues(tmp_path, prepared, flip_every=4):
    """A label-issues table as the correct stage writes it: every `flip_every`-th training row
    gets the next class as its suggestion and is flagged."""
    classes = prepared.classes
    rows = []
    for k, (row, given) in enumerate(zip(prepared.train.index, prepared.labels, strict=True)):
        flagged = k % flip_every == 0
        corrected = (int(given) + 1) % len(classes) if flagged else int(given)
        path = prepared.train.paths[k] if prepared.train.paths is not None else ""
        rows.append([int(row), path, int(given), classes[given], corrected, classes[corrected],
                     0.1 if flagged else 0.9, flagged, -1])  # fmt: skip
    return write_csv(tmp_path / "label_issues.csv", list(LABEL_ISSUE_COLUMNS), rows)


def _read(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _expected_labels(prepared):
    """source row -> expected corrected class index (from the issues table's rule)."""
    out = {}
    for k, (row, given) in enumerate(zip(prepared.train.index, prepared.labels, strict=True)):
        out[int(row)] = (int(given) + 1) % 3 if k % 4 == 0 else int(given)
    return out


def test_csv_export_round_trips_through_the_csv_source(tmp_path):
    path, rows = labelled_csv(tmp_path / "data", COUNTS)
    write_csv(path, ["path", "label", "annotator"], [[p, lab, "ann"] for p, lab in rows])
    data = params(source="csv", path=str(path), test_size=3, image_size=8)
    prepared = _prepare(data, tmp_path)
    issues = _issues(tmp_path, prepared)
    result = export_labels(tmp_path / "prepared", issues, tmp_path / "exports")
    out = tmp_path / "exports" / "labels.corrected.csv"
    assert result.files == (out,) and result.rows == 15 and result.changed == 3
    table = _read(out)
    assert list(table[0]) == ["path", "label", "annotator", "corrected_label", "label_quality",
                              "is_label_issue"]  # fmt: skip
    assert [r["annotator"] for r in table] == ["ann"] * 15  # the user's columns are kept
    test_rows = set(prepared.test.index.tolist())
    assert all(table[r]["label_quality"] == "" for r in test_rows)
    # load the export as a csv source: the labels are the corrected ones (names, as written)
    again = load_source(params(source="csv", path=str(out), root=str(tmp_path / "data"),
                               csv={"label_column": "corrected_label"}))  # fmt: skip
    expected = _expected_labels(prepared)
    source = load_source(data)
    for row in range(15):
        assert again.labels[row] == expected.get(row, source.labels[row])
    assert again.paths.tolist() == source.paths.tolist()
    assert (again.labels != source.labels).sum() == 3
    assert path.read_text().splitlines()[0] == "path,label,annotator"  # the user's file untouched


def test_csv_export_keeps_integer_labels_and_only_issues(tmp_path):
    path, rows = labelled_csv(tmp_path / "data", COUNTS)
    index = {"bird": 0, "cat": 1, "dog": 2}
    write_csv(path, ["path", "label"], [[p, index[lab]] for p, lab in rows], delimiter=";")
    data = params(source="csv", path=str(path), test_size=3, classes=("bird", "cat", "dog"))
    prepared = _prepare(data, tmp_path)
    result = export_labels(tmp_path / "prepared", _issues(tmp_path, prepared), tmp_path / "ex",
                           only_issues=True)  # fmt: skip
    text = (tmp_path / "ex" / "labels.corrected.csv").read_text()
    assert text.splitlines()[0] == "path;label;corrected_label;label_quality;is_label_issue"
    with open(tmp_path / "ex" / "labels.corrected.csv", newline="") as fh:
        table = list(csv.DictReader(fh, delimiter=";"))
    assert result.rows == len(table) == 3 and all(r["is_label_issue"] == "true" for r in table)
    expected = _expected_labels(prepared)
    for r in table:
        row = rows.index([r["path"], ["bird", "cat", "dog"][int(r["label"])]])
        assert int(r["corrected_label"]) == expected[row]


def test_array_source_export_is_a_labels_path_for_the_next_prepare(tmp_path):
    data = params(subset=200, test_size=40, val_size=20)
    prepared = _prepare(data, tmp_path)
    rows = []
    for k, (row, given) in enumerate(zip(prepared.train.index, prepared.labels, strict=True)):
        corrected = (int(given) + 3) % 10 if k % 5 == 0 else int(given)
        rows.append([int(row), "", int(given), str(given), corrected, str(corrected),
                     0.2 if corrected != given else 0.8, corrected != given, -1])  # fmt: skip
    issues = write_csv(tmp_path / "issues.csv", list(LABEL_ISSUE_COLUMNS), rows)
    result = export_labels(tmp_path / "prepared", issues, tmp_path / "ex")
    assert result.files == (tmp_path / "ex" / "corrected_labels.csv",) and result.rows == 200
    relabelled = params(subset=200, test_size=40, val_size=20,
                        labels_path=str(tmp_path / "ex" / "corrected_labels.csv"))  # fmt: skip
    again = prepare_dataset(relabelled, tmp_path / "again", cache_dir=tmp_path / "cache",
                            workers=1)  # fmt: skip
    want = {r[0]: r[4] for r in rows}  # trained rows: the corrected labels
    for split in (prepared.val, prepared.test):  # the others keep theirs
        want.update(zip(split.index.tolist(), split.labels.tolist(), strict=True))
    got = {}
    for split in (again.train, again.val, again.test):  # (the new labels stratify differently)
        got.update(zip(split.index.tolist(), split.labels.tolist(), strict=True))
    assert got == want and len(got) == 200


def test_imagefolder_export_lists_moves_and_builds_a_hard_linked_copy(tmp_path):
    root = image_folder(tmp_path / "photos", COUNTS)
    data = params(source="imagefolder", path=str(root), test_size=3, image_size=8)
    prepared = _prepare(data, tmp_path)
    issues = _issues(tmp_path, prepared)
    result = export_labels(tmp_path / "prepared", issues, tmp_path / "ex", link_copy=True)
    moves = _read(tmp_path / "ex" / "moves.csv")
    assert result.rows == len(moves) == result.changed == 3
    copy = tmp_path / "ex" / "photos_relabelled"
    assert result.linked == 15 and result.copied == 0
    for move in moves:
        src = root / move["path"]
        assert src.parent.name == move["from_class"]  # the user's folder is unchanged
        dst = tmp_path / "ex" / move["copy_path"]
        assert dst.parent.name == move["to_class"] and os.path.samefile(src, dst)
    listed = sorted(str(p.relative_to(copy)) for p in copy.rglob("*.png"))
    assert len(listed) == 15
    relabelled = load_source(params(source="imagefolder", path=str(copy)))
    expected = np.bincount(load_source(data).labels, minlength=3)
    for move in moves:
        expected[prepared.classes.index(move["from_class"])] -= 1
        expected[prepared.classes.index(move["to_class"])] += 1
    assert np.bincount(relabelled.labels, minlength=3).tolist() == expected.tolist()
    with pytest.raises(InputDataError, match="photos_relabelled: exists"):
        export_labels(tmp_path / "prepared", issues, tmp_path / "ex", link_copy=True)


def test_relabelled_copy_renames_on_a_name_clash(tmp_path):
    root = image_folder(tmp_path / "photos", {"a": 3, "b": 3})
    for k in range(3):  # b/ already holds files named like a's
        (root / "b" / f"a_{k:02d}.png").write_bytes((root / "b" / "b_00.png").read_bytes())
    data = params(source="imagefolder", path=str(root), test_size=2, image_size=8)
    prepared = _prepare(data, tmp_path)
    moved = next(p for p in prepared.train.paths if p.startswith("a/"))
    rows = []
    for k, (row, given) in enumerate(zip(prepared.train.index, prepared.labels, strict=True)):
        corrected = 1 if prepared.train.paths[k] == moved else int(given)
        rows.append([int(row), prepared.train.paths[k], int(given), "", corrected, "", 0.5,
                     corrected != given, -1])  # fmt: skip
    issues = write_csv(tmp_path / "issues.csv", list(LABEL_ISSUE_COLUMNS), rows)
    export_labels(tmp_path / "prepared", issues, tmp_path / "ex", link_copy=True)
    moves = _read(tmp_path / "ex" / "moves.csv")
    stem = moved.split("/")[1].removesuffix(".png")
    assert [m["copy_path"] for m in moves] == [f"photos_relabelled/b/{stem}__from_a.png"]
    clash = tmp_path / "ex" / "photos_relabelled" / "b" / f"{stem}.png"
    assert os.path.samefile(clash, root / "b" / f"{stem}.png")  # the original b file kept


def test_export_refuses_the_source_folder_and_mismatched_issues(tmp_path):
    root = image_folder(tmp_path / "photos", COUNTS)
    data = params(source="imagefolder", path=str(root), test_size=3, image_size=8)
    prepared = _prepare(data, tmp_path)
    issues = _issues(tmp_path, prepared)
    with pytest.raises(InputDataError, match=r"photos/exports: inside the source folder"):
        export_labels(tmp_path / "prepared", issues, root / "exports")
    assert not (root / "exports").exists()
    with pytest.raises(
        InputDataError, match="--format: .parquet., expected one of csv, imagefolder"
    ):
        export_labels(tmp_path / "prepared", issues, tmp_path / "ex", fmt="parquet")
    table = _read(issues)
    table[0]["given_label"] = str((int(table[0]["given_label"]) + 1) % 3)
    write_csv(issues, list(LABEL_ISSUE_COLUMNS), [list(r.values()) for r in table])
    with pytest.raises(
        InputDataError, match=r"label_issues.csv: data row 1 .*does not match the prepared"
    ):
        export_labels(tmp_path / "prepared", issues, tmp_path / "ex")


def test_export_refuses_a_folder_changed_since_prepare(tmp_path):
    root = image_folder(tmp_path / "photos", COUNTS)
    data = params(source="imagefolder", path=str(root), test_size=3, image_size=8)
    prepared = _prepare(data, tmp_path)
    issues = _issues(tmp_path, prepared)
    (root / "bird" / "bird_00.png").rename(root / "bird" / "bird_99.png")
    with pytest.raises(InputDataError, match="changed since prepare"):
        export_labels(tmp_path / "prepared", issues, tmp_path / "ex")
