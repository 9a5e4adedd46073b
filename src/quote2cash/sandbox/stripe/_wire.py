"""Stripe's wire conventions: bracketed form parameters, strict parameter checks, errors, lists.

Stripe reads ``application/x-www-form-urlencoded`` bodies (and query strings)
whose keys nest with brackets: ``metadata[k]=v``, ``lines[0][amount]=5``,
``expand[]=customer``. Every endpoint knows its parameters and refuses any
other with ``400 parameter_unknown``; integers, booleans and enums are
checked the same way. Errors answer ``{"error": {"type", "code", "message",
"param", "doc_url"}}``.
"""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

#: Currencies Stripe counts in whole units (``amount=500`` is 500 JPY).
ZERO_DECIMAL = frozenset(
    [
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    ]
)
#: Currencies Stripe counts in thousandths, accepting only multiples of ten.
THREE_DECIMAL = frozenset(["bhd", "jod", "kwd", "omr", "tnd"])

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")
_ALNUM = string.ascii_letters + string.digits


class StripeError(Exception):
    """A request Stripe refuses, with its HTTP status and error object."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type_
        self.code = code
        self.param = param
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The ``{"error": {...}}`` answer."""
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code is not None:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param is not None:
            error["param"] = self.param
        error.update(self.extra)
        return {"error": error}


def missing(kind: str, id_: str, *, param: str = "id", status: int = 404) -> StripeError:
    """``No such customer: 'cus_…'`` (404 for an id in the path, 400 for one in the parameters)."""
    return StripeError(f"No such {kind}: '{id_}'", status=status, code="resource_missing", param=param)


def new_id(prefix: str, seq: int) -> str:
    """An id like Stripe's, whose text order is creation order (lists are sorted by it)."""
    return f"{prefix}_{seq:08d}{''.join(secrets.choice(_ALNUM) for _ in range(14))}"


# -- form decoding ---------------------------------------------------------------------
def decode_form(text: str) -> dict[str, Any]:
    """``a[b][0][c]=1&a[b][0][d]=2`` → ``{"a": {"b": [{"c": "1", "d": "2"}]}}``.

    Lists are written with indices (``[0]``) or empty brackets (``[]``);
    ``None`` never appears: an empty value is the empty string (Stripe's
    "unset this field").
    """
    root: dict[str, Any] = {}
    for raw_key, value in parse_qsl(text, keep_blank_values=True):
        match = _KEY.match(raw_key)
        if match is None:
            raise StripeError(f"Invalid parameter name: {raw_key}", param=raw_key)
        parts = [match.group(1), *_PART.findall(match.group(2))]
        _assign(root, parts, value, raw_key)
    decoded: dict[str, Any] = _lists(root)
    return decoded


def _assign(node: dict[str, Any], parts: list[str], value: str, raw_key: str) -> None:
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "":
            # ``a[]=x``: the next free index of the list a.
            part = str(len(node))
        if last:
            if isinstance(node.get(part), dict):
                raise StripeError(f"Invalid parameter: {raw_key} is both a value and a hash", param=raw_key)
            node[part] = value
            return
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise StripeError(f"Invalid parameter: {raw_key} is both a value and a hash", param=raw_key)
        node = child


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {k: _lists(v) for k, v in node.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


# -- parameter checking -----------------------------------------------------------------
class Spec:
    """What an endpoint accepts: a tree of named parameters with their types.

    A type is ``str``, ``int``, ``bool``, ``"meta"`` (metadata: any keys, string
    values), a tuple of allowed strings (an enum), a nested dict, or a one-item
    list ``[type]`` for an array.
    """

    def __init__(self, fields: Mapping[str, Any], *, required: tuple[str, ...] = ()) -> None:
        self.fields = {**fields, "expand": [str]}
        self.required = required

    def check(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The parameters converted to their types; ``StripeError`` like Stripe's otherwise."""
        out = _check_dict(params, self.fields, "")
        for name in self.required:
            if out.get(name) in (None, ""):
                raise StripeError(f"Missing required param: {name}.", code="parameter_missing", param=name)
        return out


def _name(prefix: str, key: str) -> str:
    return f"{prefix}[{key}]" if prefix else key


def _check_dict(params: Mapping[str, Any], fields: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = _name(prefix, key)
        if key not in fields:
            raise StripeError(f"Received unknown parameter: {name}", code="parameter_unknown", param=name)
        out[key] = _check_value(value, fields[key], name)
    return out


def _check_value(value: Any, type_: Any, name: str) -> Any:
    if value == "" and type_ is not str:
        return ""  # "unset"
    if type_ == "meta":
        return _metadata(value, name)
    if isinstance(type_, dict):
        if not isinstance(value, dict):
            raise StripeError(
                f"Invalid object: {name} must be a hash", code="parameter_invalid_object", param=name
            )
        return _check_dict(value, type_, name)
    if isinstance(type_, list):
        items = value if isinstance(value, list) else None
        if items is None:
            raise StripeError(
                f"Invalid array: {name} must be an array", code="parameter_invalid_array", param=name
            )
        return [_check_value(v, type_[0], f"{name}[{i}]") for i, v in enumerate(items)]
    if isinstance(value, dict | list):
        raise StripeError(f"Invalid {name}: must be a string", param=name)
    if type_ is int:
        if not re.fullmatch(r"-?\d+", value):
            raise StripeError(f"Invalid integer: {value}", code="parameter_invalid_integer", param=name)
        return int(value)
    if type_ is bool:
        if value not in ("true", "false"):
            raise StripeError(f"Invalid boolean: {value}", param=name)
        return value == "true"
    if isinstance(type_, tuple):
        if value not in type_:
            choices = ", ".join(type_[:-1]) + f" or {type_[-1]}" if len(type_) > 1 else type_[0]
            raise StripeError(
                f"Invalid {name.rsplit('[', 1)[-1].rstrip(']')}: must be one of {choices}", param=name
            )
        return value
    return value


def _metadata(value: Any, name: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise StripeError(
            f"Invalid object: {name} must be a hash", code="parameter_invalid_object", param=name
        )
    if len(value) > 50:
        raise StripeError("Invalid metadata: metadata has more than 50 keys", param=name)
    for key, item in value.items():
        if not isinstance(item, str):
            raise StripeError(f"Invalid {name}[{key}]: must be a string", param=f"{name}[{key}]")
        if len(key) > 40 or len(item) > 500:
            raise StripeError(
                f"Invalid {name}[{key}]: keys are at most 40 and values at most 500 characters",
                param=f"{name}[{key}]",
            )
    return dict(value)


def merge_metadata(current: Mapping[str, str] | None, update: Any) -> dict[str, str]:
    """Stripe's metadata update: keys set to ``""`` are removed, ``metadata=""`` clears all."""
    if update == "":
        return {}
    merged = dict(current or {})
    for key, value in (update or {}).items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def check_currency(value: Any, param: str = "currency") -> str:
    """A lower-case ISO currency code, or Stripe's refusal."""
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z]{3}", value):
        raise StripeError(f"Invalid currency: {value}", code="parameter_invalid_string", param=param)
    return value.lower()


def check_amount(amount: int, currency: str, param: str = "amount") -> int:
    """Stripe accepts three-decimal currencies only in steps of ten of their minor unit."""
    if currency in THREE_DECIMAL and amount % 10:
        raise StripeError(
            f"Invalid {param}: amounts in {currency} must be a multiple of 10 "
            f"(the smallest unit Stripe charges is 0.010 {currency.upper()})",
            code="invalid_amount",
            param=param,
        )
    return amount


# -- lists ---------------------------------------------------------------------------------
def page(
    items: list[dict[str, Any]],
    query: Mapping[str, Any],
    url: str,
    *,
    view: Callable[[dict[str, Any]], dict[str, Any]] = lambda d: d,
) -> dict[str, Any]:
    """A list answer over ``items`` (newest first) with ``limit``, ``starting_after``, ``ending_before``."""
    limit = query.get("limit", 10)
    if not isinstance(limit, int) or not 1 <= limit <= 100:
        raise StripeError(
            "Invalid limit: must be an integer between 1 and 100",
            code="parameter_invalid_integer",
            param="limit",
        )
    ids = [d["id"] for d in items]
    after, before = query.get("starting_after"), query.get("ending_before")
    if after and before:
        raise StripeError(
            "You may only specify one of these parameters: ending_before, starting_after.",
            param="ending_before",
        )
    if after:
        if after not in ids:
            raise missing("object", str(after), param="starting_after", status=400)
        start = ids.index(after) + 1
        chosen, has_more = items[start : start + limit], start + limit < len(items)
    elif before:
        if before not in ids:
            raise missing("object", str(before), param="ending_before", status=400)
        end = ids.index(before)
        chosen, has_more = items[max(0, end - limit) : end], end - limit > 0
    else:
        chosen, has_more = items[:limit], len(items) > limit
    return {"object": "list", "data": [view(d) for d in chosen], "has_more": has_more, "url": url}


LIST = Spec(
    {
        "limit": int,
        "starting_after": str,
        "ending_before": str,
        "created": {"gt": int, "gte": int, "lt": int, "lte": int},
    }
)


def list_spec(**filters: Any) -> Spec:
    """The parameters of a list endpoint: paging, ``created`` ranges and its own filters."""
    return Spec({**LIST.fields, **filters})


def created_filter(query: Mapping[str, Any]) -> Callable[[dict[str, Any]], bool]:
    """A predicate for ``created[gt]`` and friends."""
    bounds = query.get("created") or {}
    if not isinstance(bounds, dict):
        return lambda d: True
    ops: dict[str, Callable[[int, int], bool]] = {
        "gt": lambda a, b: a > b,
        "gte": lambda a, b: a >= b,
        "lt": lambda a, b: a < b,
        "lte": lambda a, b: a <= b,
    }
    return lambda d: all(ops[k](int(d["created"]), int(v)) for k, v in bounds.items() if v != "")
