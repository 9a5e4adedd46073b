"""Identity matching decides on name, domain and tax id, not exact strings."""

from __future__ import annotations

from quote2cash.rules import Candidate, match_customer, normalise_name

EXISTING = [
    Candidate("10", "GLOBEX CORPORATION", "globex.com", "US-12-345"),
    Candidate("11", "Initech Limited", "initech.co.uk"),
    Candidate("12", "Umbrella Health GmbH", "umbrella-group.de"),
]


def test_normalised_names_drop_suffixes_case_and_punctuation() -> None:
    assert normalise_name("Globex Corp.") == normalise_name("GLOBEX CORPORATION") == "globex"
    assert normalise_name("Müller & Söhne GmbH") == "muller and sohne"


def test_same_tax_id_is_a_match_whatever_the_name() -> None:
    assert match_customer("Globex Industries", None, "us12345", EXISTING).candidate == EXISTING[0]


def test_same_domain_and_similar_name_is_a_match() -> None:
    result = match_customer("Initech Ltd", "initech.co.uk", None, EXISTING)
    assert result.kind == "match" and result.candidate == EXISTING[1]


def test_similar_name_on_another_domain_is_a_probable_duplicate() -> None:
    result = match_customer("Umbrella Health", "umbrella.io", None, EXISTING)
    assert result.kind == "probable_duplicate" and result.candidate == EXISTING[2]


def test_different_tax_ids_rule_a_candidate_out_and_strangers_do_not_match() -> None:
    assert match_customer("Globex Corporation", None, "GB999", EXISTING).kind == "none"
    assert match_customer("Stark Logistics", "stark.com", None, EXISTING).kind == "none"
