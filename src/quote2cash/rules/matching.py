"""Identity matching of customers: normalised name, web domain and tax id,
never exact strings. A strong match links to the existing record; a close but
uncertain one is a probable duplicate for a person to decide."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal
from urllib.parse import urlparse

from rapidfuzz import fuzz

_SUFFIXES = {
    "inc",
    "incorporated",
    "llc",
    "llp",
    "ltd",
    "limited",
    "plc",
    "gmbh",
    "ag",
    "kg",
    "co",
    "corp",
    "corporation",
    "company",
    "sa",
    "sas",
    "bv",
    "nv",
    "pte",
    "pty",
    "srl",
    "oy",
    "ab",
    "the",
    "group",
    "holdings",
    "se",
    "lp",
}

#: Names at least this similar (0–100) are a probable duplicate when nothing else decides.
PROBABLE_DUPLICATE_SCORE = 88.0


#: Normalised values are memoised: every new account is compared with every ERP customer,
#: and the customers' names, domains and tax ids are the same from one comparison to the next.
_MEMO = 65536


@lru_cache(maxsize=_MEMO)
def normalise_name(name: str) -> str:
    """Lower-case, accents and punctuation removed, legal suffixes dropped."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    text = text.replace("&", " and ")
    words = [w for w in re.split(r"[^a-z0-9]+", text) if w and w not in _SUFFIXES]
    return " ".join(words)


@lru_cache(maxsize=_MEMO)
def domain_of(url_or_email: str | None) -> str | None:
    """The registrable-looking domain of a website or e-mail address."""
    if not url_or_email:
        return None
    value = url_or_email.strip().lower()
    if "@" in value:
        value = value.rsplit("@", 1)[1]
    if "://" not in value:
        value = "http://" + value
    host = urlparse(value).hostname or ""
    return host.removeprefix("www.") or None


@lru_cache(maxsize=_MEMO)
def normalise_tax_id(tax_id: str | None) -> str | None:
    """Tax id without spaces, dots or dashes, upper-case."""
    if not tax_id:
        return None
    return re.sub(r"[^A-Z0-9]", "", tax_id.upper()) or None


@dataclass(frozen=True)
class Candidate:
    """An existing customer in the target system."""

    external_id: str
    name: str
    domain: str | None = None
    tax_id: str | None = None


@dataclass(frozen=True)
class MatchResult:
    """What identity matching concluded."""

    kind: Literal["none", "match", "probable_duplicate"]
    candidate: Candidate | None = None
    score: float = 0.0
    reason: str = ""


def match_customer(
    name: str, domain: str | None, tax_id: str | None, candidates: list[Candidate]
) -> MatchResult:
    """Compare a customer with existing ones.

    - same tax id → match;
    - same domain and similar name → match;
    - similar name (≥ PROBABLE_DUPLICATE_SCORE) or same domain alone → probable duplicate;
    - a different tax id on both sides rules a candidate out.
    """
    norm = normalise_name(name)
    tax = normalise_tax_id(tax_id)
    dom = (domain or "").lower() or None
    best: MatchResult = MatchResult("none")
    for cand in candidates:
        ctax = normalise_tax_id(cand.tax_id)
        if tax and ctax:
            if tax == ctax:
                return MatchResult("match", cand, 100.0, "same tax id")
            continue
        score = float(fuzz.token_sort_ratio(norm, normalise_name(cand.name)))
        same_domain = dom is not None and cand.domain is not None and dom == cand.domain.lower()
        if same_domain and score >= 70:
            return MatchResult("match", cand, score, "same web domain and similar name")
        if (score >= PROBABLE_DUPLICATE_SCORE or same_domain) and score > best.score:
            reason = "same web domain" if same_domain else f"name {score:.0f}% similar"
            best = MatchResult("probable_duplicate", cand, score, reason)
    return best
