"""Validation rules and identity matching, with business-readable messages."""

from quote2cash.rules.customer import validate_customer
from quote2cash.rules.matching import Candidate, MatchResult, domain_of, match_customer, normalise_name

__all__ = ["Candidate", "MatchResult", "domain_of", "match_customer", "normalise_name", "validate_customer"]
