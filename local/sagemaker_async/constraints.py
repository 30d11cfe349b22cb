"""InvokeEndpointAsync's documented constraints, read from botocore's service model at run time.

Lengths, ranges and patterns come from the model (the one boto3 itself ships), not copied by
hand, so the emulator rejects what AWS rejects and nothing more. Patterns are Java regular
expressions there, matched against the whole value; a length is counted in the bytes the
header carries (botocore sends UTF-8), the conservative reading for non-ASCII text. A
violation is answered as sagemaker-runtime words it::

    1 validation error detected: Value 's3://...' at 'inputLocation' failed to satisfy
    constraint: Member must have length less than or equal to 1024
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import botocore.session

from local.sagemaker_async.endpoints import ValidationError

_JAVA_CLASSES = {r"\p{ASCII}": r"\x00-\x7f", r"\p{Print}": r"\x20-\x7e"}


def python_pattern(java: str) -> re.Pattern[str]:
    """The model's Java pattern as a Python one (its character classes and ``\\z``)."""
    text = java.replace(r"\z", r"\Z")
    for java_class, ascii_range in _JAVA_CLASSES.items():
        text = text.replace(f"[{java_class}]", f"[{ascii_range}]").replace(java_class, f"[{ascii_range}]")
    return re.compile(text)


@dataclass(frozen=True)
class Constraint:
    member: str
    """The parameter's name in the API (``InputLocation``)."""
    header: str | None
    """Its HTTP header, lower case; None for the body and the endpoint name in the path."""
    integer: bool
    minimum: int | None
    maximum: int | None
    pattern: str | None
    """As the model writes it (Java), for the message."""
    regex: re.Pattern[str] | None
    sensitive: bool

    @property
    def field(self) -> str:
        """How AWS names the member in a validation message (``inputLocation``)."""
        return self.member[0].lower() + self.member[1:]

    def violations(self, value: str | bytes) -> list[str]:
        """What ``value`` breaks, each as AWS's "Member must ..." clause."""
        if self.integer:
            measure, what = int(value), "value"
        else:
            measure, what = len(value if isinstance(value, bytes) else value.encode("utf-8")), "length"
        broken = []
        if self.minimum is not None and measure < self.minimum:
            broken.append(f"Member must have {what} greater than or equal to {self.minimum}")
        if self.maximum is not None and measure > self.maximum:
            broken.append(f"Member must have {what} less than or equal to {self.maximum}")
        if self.regex is not None and isinstance(value, str) and not self.regex.fullmatch(value):
            broken.append(f"Member must satisfy regular expression pattern: {self.pattern}")
        return broken


@functools.cache
def constraints() -> dict[str, Constraint]:
    """InvokeEndpointAsync's members and their constraints, by member name."""
    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    found = {}
    for name, shape in model.operation_model("InvokeEndpointAsync").input_shape.members.items():
        meta = shape.metadata
        location = shape.serialization.get("location")
        found[name] = Constraint(
            member=name,
            header=shape.serialization["name"].lower() if location == "header" else None,
            integer=shape.type_name == "integer",
            minimum=meta.get("min"),
            maximum=meta.get("max"),
            pattern=meta.get("pattern"),
            regex=python_pattern(meta["pattern"]) if "pattern" in meta else None,
            sensitive=bool(meta.get("sensitive")),
        )
    return found


def validate(endpoint_name: str, headers: dict[str, str], body: bytes) -> None:
    """Raise ValidationError naming every broken constraint, as sagemaker-runtime answers."""
    values: dict[str, str | bytes] = {"EndpointName": endpoint_name}
    if body:
        values["Body"] = body
    for constraint in constraints().values():
        if constraint.header and headers.get(constraint.header) is not None:
            values[constraint.member] = headers[constraint.header]
    messages = []
    for member, value in values.items():
        constraint = constraints().get(member)
        if constraint is None:
            continue
        if constraint.integer and not _is_integer(value):
            messages.append(
                f"Value '{value}' at '{constraint.field}' failed to satisfy constraint: Member must be a number"
            )
            continue
        shown = f"Value at '{constraint.field}'" if constraint.sensitive else f"Value '{value}' at '{constraint.field}'"
        messages += [f"{shown} failed to satisfy constraint: {clause}" for clause in constraint.violations(value)]
    if messages:
        count = len(messages)
        raise ValidationError(f"{count} validation error{'s' if count > 1 else ''} detected: " + "; ".join(messages))


def _is_integer(value: str | bytes) -> bool:
    try:
        int(value)
    except ValueError:
        return False
    return True
