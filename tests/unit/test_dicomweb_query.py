"""QIDO-RS parameters to repository queries, matching rules, and the STOW-RS answer."""

from __future__ import annotations

import re
from datetime import date
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.dicomweb.matching import like_pattern, text_matches, wildcard_pattern
from domain.dicomweb.query import QidoLevel, QidoRequest, date_range, parse, uid_list
from domain.errors import InvalidInput
from domain.ports.dicomweb import DateRange, MatchMode, TextMatch
from domain.services.dicomweb import store_response


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20260115", DateRange(start=date(2026, 1, 15), end=date(2026, 1, 15))),
        ("20260101-20260131", DateRange(start=date(2026, 1, 1), end=date(2026, 1, 31))),
        ("20260101-", DateRange(start=date(2026, 1, 1))),
        ("-20260131", DateRange(end=date(2026, 1, 31))),
        ("2026-01-01-2026-01-31", DateRange(start=date(2026, 1, 1), end=date(2026, 1, 31))),
    ],
)
def test_date_keys_are_single_dates_or_ranges(text: str, expected: DateRange):
    assert date_range(text) == expected


@pytest.mark.parametrize("text", ["", "2026", "20261301", "20260131-20260101", "-", "x-y"])
def test_dates_that_are_not_dates_are_refused(text: str):
    with pytest.raises(InvalidInput):
        date_range(text)


def test_uid_lists_split_on_commas_and_backslashes_and_refuse_non_uids():
    assert uid_list("1.2.3,1.2.4\\1.2.5") == ("1.2.3", "1.2.4", "1.2.5")
    with pytest.raises(InvalidInput):
        uid_list("1.2.abc")


def test_a_request_becomes_a_scoped_query_with_the_ignored_keys_named():
    centre = uuid4()
    parsed = parse(
        QidoRequest(
            level=QidoLevel.STUDY,
            keys={"00100010": "DOE*", "00080018": "1.2.3", "00100030": "19800101", "00100020": ""},
        ),
        centre,
    )
    assert parsed.query.centre_id == centre
    assert parsed.query.patient_name == TextMatch(
        value="DOE*", mode=MatchMode.WILDCARD, ignore_case=True
    )
    assert parsed.query.patient_id is None  # an empty value matches everything
    assert parsed.ignored == ("00080018", "00100030")
    assert parsed.returned == ("00100010", "00100020")


def test_the_path_uid_and_a_uid_key_must_both_hold():
    both = parse(
        QidoRequest(level=QidoLevel.SERIES, keys={"0020000D": "1.2.3"}, study_instance_uid="1.2.4"),
        None,
    )
    assert both.query.study_instance_uids == ("",)  # nothing can match
    agree = parse(
        QidoRequest(
            level=QidoLevel.SERIES, keys={"0020000D": "1.2.3,1.2.4"}, study_instance_uid="1.2.4"
        ),
        None,
    )
    assert agree.query.study_instance_uids == ("1.2.4",)


def test_fuzzy_matching_applies_to_person_names_only():
    parsed = parse(
        QidoRequest(level=QidoLevel.STUDY, keys={"00100010": "doe j", "00100020": "X"}, fuzzy=True),
        None,
    )
    assert parsed.query.patient_name is not None
    assert parsed.query.patient_name.mode is MatchMode.FUZZY
    assert parsed.query.patient_id == TextMatch(value="X")
    assert parsed.fuzzy_applied


@pytest.mark.parametrize(
    ("value", "key", "mode", "found"),
    [
        ("DOE^JOHN", "doe^john", MatchMode.EXACT, True),
        ("DOE^JOHN", "DOE", MatchMode.EXACT, False),
        ("DOE^JOHN", "D?E^*", MatchMode.WILDCARD, True),
        ("DOE^JOHN", "*JO", MatchMode.WILDCARD, False),
        ("DOE^JOHN", "jo do", MatchMode.FUZZY, True),
        ("DOE^JOHN", "oe", MatchMode.FUZZY, False),
        ("van der Berg^Anna", "berg ann", MatchMode.FUZZY, True),
    ],
)
def test_person_name_matching(value: str, key: str, mode: MatchMode, found: bool):
    assert text_matches(value, TextMatch(value=key, mode=mode, ignore_case=True)) is found


@given(st.text(alphabet="ab%_\\*?.", max_size=8), st.text(alphabet="ab%_\\.", max_size=8))
def test_the_like_pattern_and_the_regular_expression_of_a_key_agree(key: str, value: str):
    """The SQL adapter's LIKE pattern means what the memory adapter's expression means."""
    like = like_pattern(key)
    regex = ""
    i = 0
    while i < len(like):  # LIKE with '\\' as the escape character, as PostgreSQL reads it
        c = like[i]
        if c == "\\":
            regex += re.escape(like[i + 1])
            i += 2
            continue
        regex += ".*" if c == "%" else "." if c == "_" else re.escape(c)
        i += 1
    by_like = re.fullmatch(regex, value, re.DOTALL) is not None
    by_regex = re.fullmatch(wildcard_pattern(key), value, re.DOTALL) is not None
    assert by_like == by_regex


def test_the_store_answer_is_200_202_or_409():
    stored = [("1.2", "1.2.1", "1.2.840.10008.5.1.4.1.1.2", "1.2.1.1")]
    failed = [(None, None, 0xC000)]
    ok, dataset = store_response("http://h/dicomweb", stored, [], None)
    assert ok == 200
    assert dataset["00081190"] == {"vr": "UR", "Value": ["http://h/dicomweb/studies/1.2"]}
    partly, dataset = store_response("http://h/dicomweb", stored, failed, None)
    assert partly == 202 and "00081198" in dataset and "00081199" in dataset
    nothing, dataset = store_response("http://h/dicomweb", [], failed, "1.9")
    assert nothing == 409 and "00081199" not in dataset
    assert dataset["00081198"]["Value"][0]["00081197"] == {"vr": "US", "Value": [0xC000]}
