"""Conditions on a status-table item, rendered as DynamoDB condition expressions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Placeholders:
    """``#n`` names and ``:v`` values of one expression."""

    names: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)

    def name(self, attribute: str) -> str:
        for placeholder, known in self.names.items():
            if known == attribute:
                return placeholder
        placeholder = f"#n{len(self.names)}"
        self.names[placeholder] = attribute
        return placeholder

    def value(self, value: Any) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = value
        return placeholder


class Condition:
    def render(self, p: Placeholders) -> str:
        raise NotImplementedError

    def __and__(self, other: Condition) -> Condition:
        return All((self, other))

    def __or__(self, other: Condition) -> Condition:
        return Any_((self, other))


@dataclass(frozen=True)
class Is(Condition):
    attribute: str
    value: Any

    def render(self, p: Placeholders) -> str:
        if self.value is None:  # as read: still absent
            return Absent(self.attribute).render(p)
        return Compare(self.attribute, "=", self.value).render(p)


@dataclass(frozen=True)
class Compare(Condition):
    attribute: str
    operator: str
    value: Any

    def render(self, p: Placeholders) -> str:
        return f"{p.name(self.attribute)} {self.operator} {p.value(self.value)}"


def IsNot(attribute: str, value: Any) -> Condition:  # noqa: N802 (reads as the condition it builds)
    return Compare(attribute, "<>", value)


def Below(attribute: str, value: Any) -> Condition:  # noqa: N802
    return Compare(attribute, "<", value)


def AtLeast(attribute: str, value: Any) -> Condition:  # noqa: N802
    return Compare(attribute, ">=", value)


@dataclass(frozen=True)
class In(Condition):
    attribute: str
    values: Sequence[Any]

    def render(self, p: Placeholders) -> str:
        return f"{p.name(self.attribute)} IN ({', '.join(p.value(v) for v in self.values)})"


@dataclass(frozen=True)
class Exists(Condition):
    attribute: str
    exists: bool = True

    def render(self, p: Placeholders) -> str:
        return f"attribute_{'exists' if self.exists else 'not_exists'}({p.name(self.attribute)})"


def Absent(attribute: str) -> Condition:  # noqa: N802
    return Exists(attribute, exists=False)


def Present(attribute: str) -> Condition:  # noqa: N802
    return Exists(attribute)


@dataclass(frozen=True)
class Not(Condition):
    part: Condition

    def render(self, p: Placeholders) -> str:
        return f"NOT ({self.part.render(p)})"


@dataclass(frozen=True)
class All(Condition):
    parts: tuple[Condition, ...]

    def render(self, p: Placeholders) -> str:
        return " AND ".join(f"({part.render(p)})" for part in self.parts)


@dataclass(frozen=True)
class Any_(Condition):
    parts: tuple[Condition, ...]

    def render(self, p: Placeholders) -> str:
        return " OR ".join(f"({part.render(p)})" for part in self.parts)
