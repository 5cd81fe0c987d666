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
    return header + "\n" + "".join(f"{t}\t{lab}\n" for t, lab in rows)


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
    path = write_text(tmp_path / "all.csv", "text,label\n" + "".join(f"{t},{lab}\n" for t, lab in rows))
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


# --- bad inputs: quoting -------------------------------------------------------------------------

def _gz(path, text):
    import gzip
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8", newline="") as f:
        f.write(text)
    return str(path)


def test_tsv_is_read_without_quoting_by_default(tmp_path):
    # GLUE-style: a text may start with, or hold, a double quote; no quoting is meant
    rows = [('"quoted start of a review', "1"), ("plain", "0"), ('a "middle" quote', "1"),
            ('ends with "', "0"), ("last", "1")]
    auto = CSVParams(text_column="auto", delimiter="auto")
    for name in ("t.tsv", "t.tab", "T.TSV"):
        path = write_text(tmp_path / name, tsv(rows))
        assert read_delimited(path, auto).rows == rows, name
    path = _gz(tmp_path / "t.tsv.gz", tsv(rows))
    assert read_delimited(path, auto).rows == rows
    # an explicit tab on another extension: no quoting either
    path = write_text(tmp_path / "t.txt", tsv(rows))
    assert read_delimited(path, CSVParams(text_column="auto", delimiter="\t")).rows == rows
    profile = ingest(write_text(tmp_path / "all.tsv", tsv(rows * 4)), csv_params=auto,
                     split_options=SplitOptions(0.25, 0.25))
    assert sum(s["rows"] for s in profile["splits"].values()) == 20 and profile["dropped_rows"]["total"] == 0


def test_quoting_can_be_turned_on_for_tsv_and_off_everywhere(tmp_path):
    path = write_text(tmp_path / "q.tsv", 'sentence\tlabel\n"tab\tinside"\t1\n"x ""y"""\t0\n')
    on = CSVParams(text_column="sentence", delimiter="auto", quotechar='"')
    assert read_delimited(path, on).rows == [("tab\tinside", "1"), ('x "y"', "0")]
    for spelling in (None, "", "none", "None"):
        assert CSVParams(quotechar=spelling).quotechar == ""
    csv_path = write_text(tmp_path / "u.csv", 'text,label\n"unquoted, really,1\n')
    off = CSVParams(quotechar="none")
    with pytest.raises(InputFormatError, match="expected 2 fields, found 3"):
        read_delimited(csv_path, off)
    assert read_delimited(write_text(tmp_path / "v.csv", 'text,label\n"x,1\n'), off).rows == [('"x', "1")]
    from components.errors import ConfigError
    with pytest.raises(ConfigError, match="quotechar must be one character"):
        CSVParams(quotechar="''")


def test_no_quoting_from_cli_and_config(tmp_path):
    from pipelines.arguments import pipeline_arguments
    from pipelines.cli import build_parser

    def parse(*argv):
        return pipeline_arguments(build_parser().parse_args(["ingest", "--output", "o", *argv]))

    assert parse("--quotechar", "none")["csv_params"]["quotechar"] == ""
    assert parse("--quotechar", "")["csv_params"]["quotechar"] == ""
    assert parse("--quotechar", '"')["csv_params"]["quotechar"] == '"'
    assert parse()["csv_params"]["quotechar"] == "auto"
    for text in ("csv_params: {quotechar: null}\n", "csv_params: {quotechar: ''}\n"):
        config = tmp_path / "c.yaml"
        config.write_text(text)
        values = pipeline_arguments(build_parser().parse_args(["run", "--config", str(config)]))
        assert values["csv_params"]["quotechar"] == ""  # travels as "", never dropped as None
        assert CSVParams.from_dict(values["csv_params"]).quotechar == ""


REVIEWS = ('"A long review, with commas.\n\nA second paragraph, also with commas, and more.\nThe end",pos\n'
           'short and sweet,pos\n'
           '"He said ""no"", then left",neg\n')


def test_multiline_quoted_text_still_reads(tmp_path):
    path = write_text(tmp_path / "r.csv", "text,label\n" + REVIEWS * 3)
    result = read_delimited(path, CSVParams())
    assert len(result.rows) == 9 and not result.bad_rows
    assert result.rows[3][0].startswith("A long review, with commas.\n\nA second paragraph")
    assert result.rows[2] == ('He said "no", then left', "neg")


def _with_unclosed_quote(rows_after=30):
    lines = ["text,label"] + [f"row {i} fine,{'pos' if i % 2 else 'neg'}" for i in range(10)]
    lines.append('"this quote is never closed,pos')  # line 12
    lines += [f"after {i},{'pos' if i % 2 else 'neg'}" for i in range(rows_after)]
    return "\n".join(lines) + "\n"


def test_unclosed_quote_is_reported_not_merged(tmp_path):
    path = write_text(tmp_path / "u.csv", _with_unclosed_quote())
    with pytest.raises(InputFormatError, match=r"u.csv, line 12, column 'text': unclosed quote"):
        read_delimited(path, CSVParams())
    result = read_delimited(path, CSVParams(on_bad_rows="skip"))
    assert len(result.rows) == 40  # every other row is read
    assert [(b.line, b.kind) for b in result.bad_rows] == [(12, "unclosed quote")]
    assert result.rows[10] == ("after 0", "neg")
    tab_text = _with_unclosed_quote().replace(",", "\t").replace("text\tlabel", "sentence\tlabel")
    as_tsv = write_text(tmp_path / "u.tsv", tab_text)  # a TSV with quoting turned on: the same
    quoted = CSVParams(delimiter="auto", text_column="sentence", quotechar='"', on_bad_rows="skip")
    result = read_delimited(as_tsv, quoted)
    assert len(result.rows) == 40 and [b.line for b in result.bad_rows] == [12]
    # a later stray quote that closes the field cleanly: still found (the rows it spans look like rows)
    text = _with_unclosed_quote(5) + 'and it closes here",neg\nlast,pos\n'
    result = read_delimited(write_text(tmp_path / "c.csv", text), CSVParams(on_bad_rows="skip"))
    assert [b.line for b in result.bad_rows] == [12]
    assert ("last", "pos") in result.rows and ("after 3", "pos") in result.rows


def test_unclosed_quote_in_first_row_and_at_the_end(tmp_path):
    path = write_text(tmp_path / "f.csv", 'text,label\n"starts badly,pos\nnext,neg\nthird,pos\n')
    result = read_delimited(path, CSVParams(on_bad_rows="skip"))
    assert result.rows == [("next", "neg"), ("third", "pos")] and result.bad_rows[0].line == 2
    path = write_text(tmp_path / "e.csv", 'text,label\na,pos\nb,neg\n"open at the end,pos\n')
    result = read_delimited(path, CSVParams(on_bad_rows="skip"))
    assert result.rows == [("a", "pos"), ("b", "neg")]
    assert [(b.line, b.kind) for b in result.bad_rows] == [(4, "malformed row")]


def test_closing_quote_followed_by_text_is_malformed(tmp_path):
    path = write_text(tmp_path / "m.csv", 'text,label\nfine,pos\n"quoted" then more,neg\nok,pos\n')
    with pytest.raises(InputFormatError, match=r"m.csv, line 3, column 'text': malformed row: text after the "
                                               r"closing quote"):
        read_delimited(path, CSVParams())
    result = read_delimited(path, CSVParams(on_bad_rows="skip"))
    assert result.rows == [("fine", "pos"), ("ok", "pos")]


# --- bad inputs: other cases ---------------------------------------------------------------------

def test_line_numbers_stay_true_after_malformed_rows(tmp_path):
    path = write_text(tmp_path / "l.csv", 'text,label\nok,1\n"bad" x,0\nfine,1\n"bad" y,0\n,1\nlast,0\n')
    result = read_delimited(path, CSVParams(on_bad_rows="skip"))
    assert [(b.line, b.kind) for b in result.bad_rows] == [(3, "malformed row"), (5, "malformed row"),
                                                            (6, "empty text")]
    path = write_text(tmp_path / "l.tsv", "sentence\tlabel\nok\t1\nx\ty\tz\n\t1\nfine\t0\n")
    result = read_delimited(path, CSVParams(delimiter="auto", text_column="sentence", on_bad_rows="skip"))
    assert [b.line for b in result.bad_rows] == [3, 4]


def test_bom_is_stripped_for_every_utf8_spelling(tmp_path):
    path = tmp_path / "b.csv"
    path.write_bytes(b"\xef\xbb\xbftext,label\nhello,1\n")
    for encoding in ("utf-8", "utf8", "UTF-8", "utf_8", "U8", "utf-8-sig"):
        assert read_delimited(str(path), CSVParams(encoding=encoding)).rows == [("hello", "1")], encoding
    wide = tmp_path / "w.csv"
    wide.write_bytes("text,label\nhéllo,1\n".encode("utf-16"))
    assert read_delimited(str(wide), CSVParams(encoding="utf-16")).rows == [("héllo", "1")]


def test_duplicate_header_names_are_refused(tmp_path):
    path = write_text(tmp_path / "d.csv", "text,label,text\na,1,b\n")
    with pytest.raises(InputFormatError, match=r"line 1, column 'text': the header names column 'text' 2 times "
                                               r"\(fields \[1, 3\]\)"):
        read_delimited(path, CSVParams())
    other = write_text(tmp_path / "o.csv", "id,text,label,id\n1,a,1,2\n")  # a column we do not read
    assert read_delimited(other, CSVParams()).rows == [("a", "1")]


def test_fieldnames_on_a_file_with_a_header(tmp_path):
    path = write_text(tmp_path / "h.tsv", "sentence\tlabel\ngood\t1\nbad\t0\n")
    params = CSVParams(delimiter="\t", fieldnames=["text", "label"])
    with pytest.raises(InputFormatError, match=r"h.tsv, line 1: this first row repeats column names"):
        read_delimited(path, params)
    skip = CSVParams(delimiter="\t", fieldnames=["text", "label"], on_bad_rows="skip")
    result = read_delimited(path, skip)
    assert result.rows == [("good", "1"), ("bad", "0")] and result.bad_rows[0].kind == "header row"
    quoted = write_text(tmp_path / "h.csv", "text,label\ngood,1\n")
    with pytest.raises(InputFormatError, match="repeats column names"):
        read_delimited(quoted, CSVParams(fieldnames=["text", "label"]))


def test_field_limit_is_a_clear_error(tmp_path):
    from components.delimited import MAX_FIELD_CHARS
    assert MAX_FIELD_CHARS == 131_072
    long_text = "x" * (MAX_FIELD_CHARS + 1)
    path = write_text(tmp_path / "long.tsv", f"sentence\tlabel\nok\t1\n{long_text}\t0\n")
    with pytest.raises(InputFormatError, match=r"line 3, column 'sentence': the field holds 131,073 characters"):
        read_delimited(path, TSV)
    path = write_text(tmp_path / "long.csv", f"text,label\nok,1\n{long_text},0\n")
    with pytest.raises(InputFormatError, match=r"line 3: a field holds more than 131,072 characters"):
        read_delimited(path, CSVParams())
    at_limit = write_text(tmp_path / "max.tsv", f"sentence\tlabel\n{'y' * MAX_FIELD_CHARS}\t1\n")
    assert len(read_delimited(at_limit, TSV).rows[0][0]) == MAX_FIELD_CHARS


def test_hash_in_a_local_file_name(tmp_path):
    path = write_text(tmp_path / "hash#name.tsv", tsv(sentiment_rows(3)))
    assert len(read_delimited(path, TSV).rows) == 6
    with pytest.raises(DataSourceError, match=r"other#name.tsv: file not found"):
        read_delimited(str(tmp_path / "other#name.tsv"), TSV)
    archive = _zip(tmp_path / "with#hash.zip", {"in#side.tsv": tsv(sentiment_rows(2))})
    assert len(read_delimited(archive + "#in#side.tsv", TSV).rows) == 4


def test_gzipped_inputs(tmp_path):
    rows = [("good, fun", "1"), ("bad", "0")]
    auto = CSVParams(text_column="auto", delimiter="auto")
    assert read_delimited(_gz(tmp_path / "t.tsv.gz", tsv(rows)), auto).rows == rows
    csv_text = 'text,label\n"good, fun",1\nbad,0\n'
    assert read_delimited(_gz(tmp_path / "t.csv.gz", csv_text), auto).rows == rows
    bad = tmp_path / "b.tsv.gz"
    import gzip
    with gzip.open(bad, "wb") as f:
        f.write(b"sentence\tlabel\nok\t1\nbad \xff\t0\n")
    with pytest.raises(InputFormatError, match=r"b.tsv.gz, line 3: bytes not decodable"):
        read_delimited(str(bad), TSV)
    whole = gzip.compress(b"sentence\tlabel\n" + b"good\t1\n" * 2000)
    (tmp_path / "cut.tsv.gz").write_bytes(whole[:len(whole) // 2])
    with pytest.raises(InputFormatError, match=r"cut.tsv.gz: not a readable gzip file"):
        read_delimited(str(tmp_path / "cut.tsv.gz"), TSV)


def test_split_keeps_every_class_in_training(tmp_path):
    rows = sentiment_rows(20) + [("lonely example", "2")]
    path = write_text(tmp_path / "t.tsv", tsv(rows))
    for seed in range(6):  # whatever the seed, the single example is trained on
        profile = ingest(path, csv_params=TSV, split_options=SplitOptions(0.5, 0.3, seed=seed))
        assert profile["splits"]["train"]["labels"]["2"] == 1
        assert profile["splits"]["validation"]["labels"]["2"] == 0
    assert any("no rows of 1 class: '2' (1 row)" in note for note in profile["notes"])
    md_dir = tmp_path / "p"
    ingest(path, csv_params=TSV, profile_dir=str(md_dir))
    assert "'2' (1 row)" in (md_dir / "profile.md").read_text()


def test_too_small_classes_get_true_advice(tmp_path):
    rows = [(f"text number {i}", str(i)) for i in range(200)]
    path = write_text(tmp_path / "t.tsv", tsv(rows))
    with pytest.raises(LabelError) as error:
        ingest(path, csv_params=TSV, split_options=SplitOptions(0.6, 0.2))
    message = str(error.value)
    assert "the validation split is empty" in message and "200 classes, the largest with 1 row" in message
    assert "a class needs 2 rows" in message and "Give a validation file" in message
    doubled = write_text(tmp_path / "d.tsv", tsv(rows * 2))  # 2 rows a class: validation gets one each
    with pytest.raises(LabelError, match=r"the test split is empty.*a class needs 4 rows"):
        ingest(doubled, csv_params=TSV, split_options=SplitOptions(0.6, 0.2))
    four = write_text(tmp_path / "f.tsv", tsv(rows * 4))  # as advised: every split gets each class
    profile = ingest(four, csv_params=TSV, split_options=SplitOptions(0.6, 0.2))
    assert [profile["splits"][n]["rows"] for n in ("train", "validation", "test")] == [200, 400, 200]
    with pytest.raises(LabelError, match="validation_fraction is 0"):
        ingest(four, csv_params=TSV, split_options=SplitOptions(0.0, 0.2))


def test_label_notes_in_the_profile(tmp_path):
    rows = [("good", "Pos"), ("fine", "pos"), ("bad", "neg"), ("same text", "pos"), ("same text", "neg"),
            ("awful", "neg")] * 2
    path = write_text(tmp_path / "t.tsv", tsv(rows))
    profile = ingest(path, path, csv_params=TSV, profile_dir=str(tmp_path / "p"))
    assert profile["labels_differing_only_by_case"] == [["Pos", "pos"]]
    assert profile["splits"]["train"]["duplicate_texts_with_conflicting_labels"] == 1
    md = (tmp_path / "p" / "profile.md").read_text()
    assert "labels 'Pos', 'pos' differ only by case" in md
    assert "| texts with conflicting labels |" in md and "train: 1 text(s) occur with more than one label" in md


def test_skipped_rows_by_reason_in_the_profile(tmp_path):
    path = write_text(tmp_path / "t.csv", 'text,label\na,1\n,0\nb,\n"x" y,1\nc,1,2\nd,0\ne,1\n')
    profile = ingest(path, path, csv_params=CSVParams(on_bad_rows="skip"), profile_dir=str(tmp_path / "p"))
    assert profile["dropped_rows"]["by_reason"] == {"empty text": 2, "empty label": 2, "malformed row": 2,
                                                    "wrong field count": 2}
    md = (tmp_path / "p" / "profile.md").read_text()
    assert "Rows dropped: 8 — empty text: 2, empty label: 2, malformed row: 2, wrong field count: 2" in md


# --- streaming, shards and splits ----------------------------------------------------------------

def _today_split(rows, fractions, seed):
    """The exact split as it was before streaming (reference for byte identity)."""
    import random
    from collections import defaultdict

    from components.labels import label_key as _label_key
    by_label = defaultdict(list)
    for index, (_, label) in enumerate(rows):
        by_label[label].append(index)
    assignment = {}
    for label in sorted(by_label, key=_label_key):
        indices = list(by_label[label])
        random.Random(f"{seed}:{label}").shuffle(indices)
        position = 0
        for name, fraction in fractions.items():
            count = int(round(fraction * len(indices)))
            for index in indices[position:position + count]:
                assignment[index] = name
            position += count
    result = {"train": [], **{name: [] for name in fractions}}
    for index, row in enumerate(rows):
        result[assignment.get(index, "train")].append(row)
    return result


def test_exact_split_output_is_byte_identical_to_the_in_memory_algorithm(tmp_path):
    rows = sentiment_rows(137, seed=4) + [(f"neutral {i}", "2") for i in range(41)]
    path = write_text(tmp_path / "t.tsv", tsv(rows))
    profile = ingest(path, csv_params=TSV, split_options=SplitOptions(0.15, 0.1, seed=11),
                     output_dirs=out_dirs(tmp_path))
    assert profile["split_method"]["method"] == "exact"
    expected = _today_split(rows, {"validation": 0.15, "test": 0.1}, 11)
    for name in ("train", "validation", "test"):
        want = "".join(json.dumps({"text": t, "label": lab}, ensure_ascii=False) + "\n" for t, lab in expected[name])
        assert (tmp_path / name / "examples-00000.jsonl").read_text(encoding="utf-8") == want
        assert (tmp_path / name / "labels.txt").read_text() == "0\n1\n2\n"


def test_hash_split_above_the_switch(tmp_path, monkeypatch):
    import components.ingest as ingest_module
    monkeypatch.setattr(ingest_module, "EXACT_SPLIT_MAX_ROWS", 50)
    rows = [(f"review {i} " + ("good" if i % 3 else "bad"), "pos" if i % 3 else "neg") for i in range(3000)]
    rows += [("duplicate row", "pos")] * 20 + [("the only one", "rare")]
    options = SplitOptions(0.2, 0.1, seed=5)

    def split_sets(sources, folder):
        profile = ingest(sources, csv_params=TSV, split_options=options, output_dirs=out_dirs(folder))
        sets = {}
        for name in ("train", "validation", "test"):
            texts, labels, names = read_split(str(folder / name))
            sets[name] = sorted(zip(texts, [names[i] for i in labels]))
        return profile, sets

    one = write_text(tmp_path / "one.tsv", tsv(rows))
    profile, first = split_sets(one, tmp_path / "a")
    assert profile["split_method"]["method"] == "hash"
    _, again = split_sets(one, tmp_path / "b")
    assert again == first  # reproducible
    shuffled = list(rows)
    import random
    random.Random(1).shuffle(shuffled)
    for i in range(3):  # the same rows in another order, in three shards
        write_text(tmp_path / "shards" / f"part-{i}.tsv", tsv(shuffled[i::3]))
    _, sharded = split_sets(str(tmp_path / "shards" / "part-*.tsv"), tmp_path / "c")
    assert sharded == first  # independent of order and sharding
    counts = profile["splits"]
    for label, total in (("pos", 2020), ("neg", 1000)):  # stratified per label, in expectation
        assert abs(counts["validation"]["labels"][label] - 0.2 * total) < 5 * (0.16 * total) ** 0.5
        assert abs(counts["test"]["labels"][label] - 0.1 * total) < 5 * (0.09 * total) ** 0.5
    assert counts["train"]["labels"]["rare"] == 1  # every class keeps a row in training
    in_splits = [name for name, rows_ in first.items() if ("duplicate row", "pos") in rows_]
    assert len(in_splits) == 1 and first[in_splits[0]].count(("duplicate row", "pos")) == 20
    assert sum(len(v) for v in first.values()) == len(rows)
    from components.ingest import hash_unit  # the documented rule: where the row's hash falls
    assert all(hash_unit(5, label, text) < 0.2 for text, label in first["validation"])
    assert all(0.2 <= hash_unit(5, label, text) < 0.3 for text, label in first["test"])
    assert all(hash_unit(5, label, text) >= 0.3 for text, label in first["train"] if label != "rare")
    exact = ingest(write_text(tmp_path / "small.tsv", tsv(rows[:50])), csv_params=TSV, split_options=options)
    assert exact["split_method"]["method"] == "exact"  # at the switch, still exact


def test_globs_folders_and_per_shard_errors(tmp_path):
    data = tmp_path / "data"
    _gz(data / "part-0.tsv.gz", tsv(sentiment_rows(5, seed=1)))
    _gz(data / "part-1.tsv.gz", tsv(sentiment_rows(5, seed=2)))
    write_text(data / "_SUCCESS", "")
    write_text(data / ".hidden.tsv", "junk")
    auto = CSVParams(text_column="sentence", delimiter="auto")
    profile = ingest(str(data / "part-*.tsv.gz"), csv_params=auto, profile_dir=str(tmp_path / "p"))
    assert sum(s["rows"] for s in profile["splits"].values()) == 20  # train, validation, test carved
    assert profile["file_counts"]["train"] == 2
    assert "(2 files)" in (tmp_path / "p" / "profile.md").read_text()
    assert len(read_delimited(str(data), auto).rows) == 20  # a folder: every data file in it
    _gz(data / "part-2.tsv.gz", "sentence\tlabel\ngood\t1\nbad\t0\textra\n")
    with pytest.raises(InputFormatError, match=r"part-2.tsv.gz, line 3: expected 2 fields"):
        read_delimited(str(data / "part-*.tsv.gz"), auto)
    with pytest.raises(DataSourceError, match="matches no files"):
        read_delimited(str(data / "nothing-*.tsv"), auto)


def test_gcs_folder_and_glob(tmp_path, gcs_emulator):
    bucket = gcs_emulator.bucket("textclf-test")
    for i in range(3):
        bucket.blob(f"shards/train-{i}.csv").upload_from_string(
            "text,label\n" + "".join(f"{t},{lab}\n" for t, lab in sentiment_rows(4, seed=i)))
    bucket.blob("shards/_SUCCESS").upload_from_string("")
    for source in ("gs://textclf-test/shards/", "gs://textclf-test/shards", "gs://textclf-test/shards/train-*.csv"):
        result = read_delimited(source, CSVParams())
        assert len(result.rows) == 24 and len(result.files) == 3, source
    bad = "text,label\nok,1\n" + "x,1,2\n"
    bucket.blob("shards/train-9.csv").upload_from_string(bad)
    with pytest.raises(InputFormatError, match=r"gs://textclf-test/shards/train-9.csv, line 3"):
        read_delimited("gs://textclf-test/shards/train-*.csv", CSVParams())
    with pytest.raises(DataSourceError, match="holds no data files"):
        read_delimited("gs://textclf-test/empty/", CSVParams())


def test_split_writer_streams_shards_like_json_dumps(tmp_path):
    from components.split_io import SplitWriter, encode_example, iter_split
    tricky = ['tab\there', 'quote " and \\ backslash', "new\nline\r", "émoji 😀 \u2028 sep", "\x00nul"]
    for text in tricky:
        assert encode_example(text, "lab\"el") == json.dumps({"text": text, "label": 'lab"el'},
                                                             ensure_ascii=False) + "\n"
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "examples-00009.jsonl").write_text("stale\n")
    writer = SplitWriter(str(folder), examples_per_shard=2)
    for i, text in enumerate(tricky):
        writer.write(text, str(i % 2))
    assert writer.close(["0", "1"]) == 5
    assert sorted(p.name for p in folder.glob("examples-*.jsonl")) == [
        "examples-00000.jsonl", "examples-00001.jsonl", "examples-00002.jsonl"]
    assert [t for t, _ in iter_split(str(folder))] == tricky


def test_profile_counts_match_an_exact_recount(tmp_path):
    rows = sentiment_rows(60, seed=3) + [("x y z", "1")] * 3 + [("x y z", "0")]
    path = write_text(tmp_path / "t.tsv", tsv(rows))
    dev = write_text(tmp_path / "dev.tsv", tsv(rows[:10]))
    profile = ingest(path, dev, csv_params=TSV)
    train = profile["splits"]["train"]
    texts = [t for t, _ in rows]
    assert train["duplicate_rows"] == len(texts) - len(set(texts))
    words = sorted(len(t.split()) for t in texts)
    assert train["text_words"]["p50"] == words[int(round(0.5 * (len(words) - 1)))]
    assert train["text_chars"]["mean"] == round(sum(len(t) for t in texts) / len(texts), 2)
    shared = len({t for t, _ in rows[:10]})
    # validation serves as test: the same rows, so no test/validation overlap, but test/train is real
    assert profile["texts_shared_between_splits"] == {"train/validation": shared, "test/train": shared}
