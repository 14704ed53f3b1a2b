"""components/common/delimited.py: the "did you mean delimiter ...?" hint for a CSV file read
with the wrong delimiter (text or bytes, a BOM, tabs, an empty head; no hint when the delimiter
is right or the header has no other delimiter either) and the one-column message around it.

tests/components/ingest/test_ingest_delimiter.py checks the readers that use the hint on real
files; this module checks the hint itself."""

from __future__ import annotations

import pytest

from components.common.delimited import COMMON_DELIMITERS, delimiter_hint, one_column_message

SEMICOLON_FILE = "age;employed;state\n30;1;MA\n41;0;MA\n"


def test_a_semicolon_file_read_with_commas_gets_the_hint():
    assert delimiter_hint(SEMICOLON_FILE, ",") == "did you mean delimiter ';'?"


def test_bytes_are_read_like_text():
    assert delimiter_hint(SEMICOLON_FILE.encode(), ",") == "did you mean delimiter ';'?"


def test_bytes_that_are_not_utf8_still_get_the_hint():
    latin1 = "café;prix\n1;2\n".encode("latin-1")  # é is one byte 0xe9: invalid UTF-8
    assert delimiter_hint(latin1, ",") == "did you mean delimiter ';'?"


@pytest.mark.parametrize(
    "head", ["\ufeffa;b;c\n1;2;3\n", "\ufeffa;b;c\n".encode()], ids=["text", "bytes"]
)
def test_a_byte_order_mark_does_not_hide_the_header(head):
    # (a BOM holds no delimiter, so it could only change the answer with an empty header)
    assert delimiter_hint(head, ",") == "did you mean delimiter ';'?"
    assert delimiter_hint(head, ";") is None


def test_a_tab_separated_file_gets_a_tab_hint():
    hint = delimiter_hint("age\temployed\tstate\n30\t1\tMA\n", ",")
    assert hint == "did you mean delimiter '\\t'?"


def test_a_comma_file_read_with_semicolons_gets_the_comma_hint():
    assert delimiter_hint("a,b,c\n1,2,3\n", ";") == "did you mean delimiter ','?"


def test_the_most_frequent_other_delimiter_is_named():
    # "a|b;c|d|e": three pipes, one semicolon
    assert delimiter_hint("a|b;c|d|e\n", ",") == "did you mean delimiter '|'?"


@pytest.mark.parametrize(
    "head", ["", b"", "\n", "\ufeff", "\r\n1;2\n"], ids=["empty", "bytes", "newline", "bom", "crlf"]
)
def test_an_empty_head_or_header_line_gets_no_hint(head):
    assert delimiter_hint(head, ",") is None


@pytest.mark.parametrize("delimiter", COMMON_DELIMITERS)
def test_a_file_read_with_its_own_delimiter_gets_no_hint(delimiter):
    header = delimiter.join(["age", "employed", "state"])
    # other delimiters in the header do not matter when the configured one is there
    mixed = f"{header}{delimiter}note;with|others\n"
    assert delimiter_hint(mixed, delimiter) is None


def test_a_one_column_file_gets_no_hint():
    assert delimiter_hint("employed\n1\n0\n", ",") is None


def test_only_the_header_line_decides():
    # one column in the header: the data lines' semicolons are values (decimal commas, text)
    assert delimiter_hint("comment\nfine; really\nok;ok\n", ",") is None
    # the header alone names the delimiter: data lines may hold the configured one
    assert delimiter_hint("a;b\n1,5;2,5\n", ",") == "did you mean delimiter ';'?"


def test_one_column_message_names_the_delimiter_the_hint_and_the_setting():
    message = one_column_message(",", "did you mean delimiter ';'?")
    assert message == (
        "parsed into 1 column with delimiter ','; did you mean delimiter ';'? "
        "(data_ingestion.delimiter)"
    )
    assert "'\\t'" in one_column_message("\t", "x")
