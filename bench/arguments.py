"""What the bench's commands accept on their command lines (argparse types)."""

from __future__ import annotations

import argparse


def positive(text: str) -> int:
    """A count or a rate: a whole number ≥ 1 (0 keys or 0 s would divide by zero later)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


def numbers(text: str) -> tuple[int, ...]:
    """A comma-separated list of positive whole numbers, at least one."""
    values = tuple(positive(part.strip()) for part in text.split(",") if part.strip())
    if not values:
        raise argparse.ArgumentTypeError("expected numbers separated by commas")
    return values


def fraction(text: str) -> float:
    """A share of capacity: more than 0, at most 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1]: {value}")
    return value
