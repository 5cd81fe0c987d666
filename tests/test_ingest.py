import json
import os
import zipfile

import pytest

from components.errors import DataSourceError, InputFormatError, LabelError, UnsafeArchiveError
from components.ingest import ingest, read_delimited, stratified_split
from components.options import CSVParams, SplitOptions
from components.split_io import read_split
from tests.conftest import sentiment_rows, write_text

TSV = CSVParams(delimiter="\t", text_column="sentence", label_column="label")


def tsv(rows, header="sentence\tlabel"):
    return header + "\n" + "".join(f"{t}\t{l}\n" for t, l in rows)


def out_dirs(tmp_path):
    return {name: str(tmp_path / name) for name in ("train", "validation", "test")}


def test_reads_explicit_splits_and_profiles(tmp_path):
    train = write_text(tmp_path / "train.tsv", tsv(sentiment_rows(10) + [("good film", "1")] * 2))
    dev = write_text(tmp_path / "dev.tsv", tsv(sentiment_rows(3, seed=1)))
    profile = ingest(train, dev, csv_params=TSV, output_dirs=out_dirs(tmp_path),
                     profile_dir=str(tmp_path / "profile"))
    assert profile["splits"]["train"]["rows"] == 22
    assert profile["splits"]["train"]["labels"] == {"0": 10, "1": 12}
    assert profile["splits"]["validation"]["rows"] == 6
    assert profile["splits"]["train"]["duplicate_rows"] == 1
    assert profile["sources"]["test"].startswith("the validation split")
    texts, labels, names = read_split(str(tmp_path / "validation"))
    assert names == ["0", "1"] and len(texts) == 6 and set(labels) == {0, 1}
    assert os.path.exists(tmp_path / "profile" / "profile.md")
    assert json.load(open(tmp_path / "profile" / "profile.json"))["dropped_rows"]["total"] == 0


def test_single_file_split_is_stratified_and_seeded(tmp_path):
    rows = sentiment_rows(50)
    path = write_text(tmp_path / "all.csv", "text,label\n" + "".join(f"{t},{l}\n" for t, l in rows))
    options = SplitOptions(validation_fraction=0.2, test_fraction=0.1, seed=7)
    a, b = tmp_path / "a", tmp_path / "b"
    profile = ingest(path, split_options=options, output_dirs=out_dirs(a))
    ingest(path, split_options=options, output_dirs=out_dirs(b))
    assert profile["splits"]["validation"]["labels"] == {"0": 10, "1": 10}
    assert profile["splits"]["test"]["labels"] == {"0": 5, "1": 5}
    assert profile["splits"]["train"]["rows"] == 70
    for name in ("train", "validation", "test"):
        assert open(a / name / "examples-00000.jsonl", "rb").read() == \
            open(b / name / "examples-00000.jsonl", "rb").read()
    other = ingest(path, split_options=SplitOptions(0.2, 0.1, seed=8), output_dirs=out_dirs(tmp_path / "c"))
    assert other["splits"]["validation"]["rows"] == 20
    assert open(tmp_path / "c" / "validation" / "examples-00000.jsonl", "rb").read() != \
        open(a / "validation" / "examples-00000.jsonl", "rb").read()


def test_string_and_int_labels_sort(tmp_path):
    rows = [("a b", "10"), ("c d", "2"), ("e f", "2"), ("g h", "10"), ("i j", "3")]
    path = write_text(tmp_path / "t.tsv", tsv(rows))
    profile = ingest(path, path, csv_params=TSV)
    assert profile["label_names"] == ["2", "3", "10"]
    rows = [("a", "pos"), ("b", "neg"), ("c", "neutral")]
    path = write_text(tmp_path / "s.tsv", tsv(rows))
    assert ingest(path, path, csv_params=TSV)["label_names"] == ["neg", "neutral", "pos"]


def test_unknown_validation_label_is_named(tmp_path):
    train = write_text(tmp_path / "train.tsv", tsv([("a", "pos"), ("b", "neg")]))
    dev = write_text(tmp_path / "dev.tsv", tsv([("a", "pos"), ("c", "meh")]))
    with pytest.raises(LabelError, match="'meh'"):
        ingest(train, dev, csv_params=TSV)


def test_single_class_is_refused(tmp_path):
    train = write_text(tmp_path / "train.tsv", tsv([("a", "pos"), ("b", "pos")]))
    with pytest.raises(LabelError, match="at least two"):
        ingest(train, train, csv_params=TSV)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(DataSourceError, match="nope.tsv: file not found"):
        read_delimited(str(tmp_path / "nope.tsv"), TSV)
    empty = write_text(tmp_path / "empty.tsv", "")
    with pytest.raises(InputFormatError, match="empty.tsv: the file is empty"):
        read_delimited(empty, TSV)
    header_only = write_text(tmp_path / "h.tsv", "sentence\tlabel\n")
    with pytest.raises(InputFormatError, match="no usable rows"):
        read_delimited(header_only, TSV)


def test_missing_column_names_file_and_column(tmp_path):
    path = write_text(tmp_path / "t.tsv", "text\tlabel\nhello\t1\n")
    with pytest.raises(InputFormatError, match=r"t.tsv, line 1, column 'sentence': no column named"):
        read_delimited(path, TSV)


def test_wrong_field_count_names_line(tmp_path):
    path = write_text(tmp_path / "t.tsv", "sentence\tlabel\ngood\t1\nbad\t0\textra\n")
    with pytest.raises(InputFormatError, match=r"t.tsv, line 3: expected 2 fields, found 3"):
        read_delimited(path, TSV)


def test_empty_text_names_line_and_column(tmp_path):
    path = write_text(tmp_path / "t.tsv", "sentence\tlabel\ngood\t1\n  \t0\n")
    with pytest.raises(InputFormatError, match=r"line 3, column 'sentence': empty text"):
        read_delimited(path, TSV)


def test_undecodable_bytes_name_line(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_bytes(b"sentence\tlabel\ngood\t1\nbad \xff\xfe\t0\nfine\t1\n")
    with pytest.raises(InputFormatError, match=r"line 3: bytes not decodable as utf-8"):
        read_delimited(str(path), TSV)
    latin = CSVParams(delimiter="\t", text_column="sentence", encoding="latin-1")
    assert len(read_delimited(str(path), latin).rows) == 3


def test_skip_mode_counts_every_bad_row(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_bytes(b"sentence\tlabel\ngood\t1\nbad \xff\t0\n\t1\nx\t1\tz\nok\t\nfine\t0\nnice\t1\n")
    params = CSVParams(delimiter="\t", text_column="sentence", on_bad_rows="skip")
    result = read_delimited(str(path), params)
    assert [r[0] for r in result.rows] == ["good", "fine", "nice"]
    assert sorted(b.line for b in result.bad_rows) == [3, 4, 5, 6]
    profile = ingest(str(path), str(path), csv_params=params, profile_dir=str(tmp_path / "p"))
    assert profile["dropped_rows"]["total"] == 8  # the same file read as train and validation
    assert "line 4 column sentence: empty text" in open(tmp_path / "p" / "profile.md").read()


def test_quoted_fields_and_headerless_files(tmp_path):
    path = write_text(tmp_path / "t.csv", 'pos,"a movie, with ""quotes""\nand a newline"\nneg,plain text\n')
    params = CSVParams(fieldnames=["label", "text"])
    result = read_delimited(path, params)
    assert result.rows == [('a movie, with "quotes"\nand a newline', "pos"), ("plain text", "neg")]


def test_stratified_split_keeps_order_within_split():
    rows = [(f"t{i}", str(i % 2)) for i in range(40)]
    parts = stratified_split(rows, {"validation": 0.25}, seed=3)
    assert len(parts["validation"]) == 10 and len(parts["train"]) == 30
    indices = [int(t[1:]) for t, _ in parts["train"]]
    assert indices == sorted(indices)


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return str(path)


def test_zip_members_like_sst2(tmp_path):
    archive = _zip(tmp_path / "SST-2.zip", {
        "SST-2/train.tsv": tsv(sentiment_rows(5)),
        "SST-2/dev.tsv": tsv(sentiment_rows(2, seed=3)),
    })
    profile = ingest(archive + "#SST-2/train.tsv", archive + "#SST-2/dev.tsv", csv_params=TSV)
    assert profile["splits"]["train"]["rows"] == 10 and profile["splits"]["validation"]["rows"] == 4
    with pytest.raises(DataSourceError, match="holds 2 files"):
        read_delimited(archive, TSV)
    with pytest.raises(DataSourceError, match="no member 'SST-2/test.tsv'"):
        read_delimited(archive + "#SST-2/test.tsv", TSV)


def test_zip_slip_entry_is_refused(tmp_path):
    archive = _zip(tmp_path / "evil.zip", {"data/train.tsv": tsv(sentiment_rows(2)),
                                           "../../escaped.txt": "owned"})
    with pytest.raises(UnsafeArchiveError, match="escaped.txt"):
        read_delimited(archive + "#data/train.tsv", TSV)
    assert not list(tmp_path.rglob("escaped.txt"))
    absolute = _zip(tmp_path / "abs.zip", {"/etc/evil.tsv": "x"})
    with pytest.raises(UnsafeArchiveError):
        read_delimited(absolute, TSV)


def test_reads_and_writes_through_gcs_emulator(tmp_path, gcs_emulator):
    bucket = gcs_emulator.bucket("textclf-test")
    bucket.blob("data/train.tsv").upload_from_string(tsv(sentiment_rows(6)))
    archive = _zip(tmp_path / "d.zip", {"dev.tsv": tsv(sentiment_rows(2, seed=5))})
    bucket.blob("data/d.zip").upload_from_filename(archive)
    profile = ingest("gs://textclf-test/data/train.tsv", "gs://textclf-test/data/d.zip", csv_params=TSV,
                     profile_dir=str(tmp_path / "p"))
    assert profile["splits"]["train"]["rows"] == 12 and profile["splits"]["validation"]["rows"] == 4
    from components.storage import list_uris, read_bytes, upload_tree
    written = upload_tree(str(tmp_path / "p"), "gs://textclf-test/out/profile")
    assert sorted(written) == ["gs://textclf-test/out/profile/profile.json",
                               "gs://textclf-test/out/profile/profile.md"]
    assert list_uris("gs://textclf-test/out") == written
    assert json.loads(read_bytes(written[0]))["splits"]["train"]["rows"] == 12
    with pytest.raises(DataSourceError, match="gs://textclf-test/data/missing.tsv"):
        read_delimited("gs://textclf-test/data/missing.tsv", TSV)


def test_unreachable_url_is_a_clear_error(tmp_path):
    with pytest.raises(DataSourceError, match="could not download"):
        read_delimited("http://127.0.0.1:9/SST-2.zip#SST-2/train.tsv", TSV)


def test_auto_delimiter_and_text_column(tmp_path):
    auto = CSVParams(text_column="auto", delimiter="auto")
    tsv_path = write_text(tmp_path / "t.tsv", tsv([("good, fun", "1"), ("bad", "0")]))
    assert read_delimited(tsv_path, auto).rows == [("good, fun", "1"), ("bad", "0")]
    csv_path = write_text(tmp_path / "t.csv", "id,review,label\n1,nice,1\n2,awful,0\n")
    with pytest.raises(InputFormatError, match="no column named 'text'.*'review'"):
        read_delimited(csv_path, auto)
    assert read_delimited(csv_path, CSVParams(text_column="review", delimiter="auto")).rows[0] == ("nice", "1")
    two = write_text(tmp_path / "two.csv", "label,comment\n1,nice\n")
    assert read_delimited(two, auto).rows == [("nice", "1")]
