"""Byte-level fuzzing for the readers of untrusted files: a seed corpus, mutations of it, and one assertion.

Each reader's test draws a few hundred inputs (deterministically: ``derandomize=True``, no example database)
from valid seed files mutated at the bytes (bit flips, overwrites with boundary values, truncation, insertion,
deletion, duplication; biased to the head and tail of the file, where formats keep their headers and
directories) and from plain random bytes, writes each to a file and calls the reader. Success or a one-line
``DefdropError`` pass; any other exception fails the test with the smallest input hypothesis finds.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from payoffs.errors import DefdropError

CORPUS = Path(__file__).parent / "corpus"
FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
BOUNDARY = [b"\x00", b"\xff", b"\x7f", b"\x80", b"\x01", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff",
            b"\x7f\xff\xff\xff", b"\x80\x00\x00\x00"]
OPS = ("flip", "set", "truncate", "insert", "delete", "duplicate")


@st.composite
def mutated(draw, seeds: Sequence[bytes], hot: int = 256) -> bytes:
    """One seed with one to four byte-level mutations; positions within ``hot`` bytes of either end or anywhere."""
    data = bytearray(draw(st.sampled_from(list(seeds))))
    for _ in range(draw(st.integers(1, 4))):
        n = len(data)
        if n == 0:
            pos = 0
        else:
            where = draw(st.sampled_from(("head", "tail", "any")))
            low, high = {"head": (0, min(n, hot) - 1), "tail": (max(0, n - hot), n - 1), "any": (0, n - 1)}[where]
            pos = draw(st.integers(low, high))
        op = draw(st.sampled_from(OPS))
        if op == "flip" and n:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            chunk = draw(st.sampled_from(BOUNDARY) | st.binary(min_size=1, max_size=8))
            data[pos:pos + len(chunk)] = chunk
        elif op == "truncate":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 16))]
        elif op == "duplicate":
            data[pos:pos] = data[pos:pos + draw(st.integers(1, 64))]
    return bytes(data)


def fuzz_bytes(seeds: Sequence[bytes], hot: int = 256) -> st.SearchStrategy[bytes]:
    """Mostly mutated seeds, sometimes the seeds themselves or random bytes."""
    return st.one_of(mutated(seeds, hot), st.sampled_from(list(seeds)), st.binary(max_size=256))


def only_defdrop_errors(read: Callable[[Path], object], path: Path) -> None:
    """Call ``read(path)``: it must succeed or raise a one-line ``DefdropError``; anything else propagates."""
    try:
        read(path)
    except DefdropError as exc:
        assert "\n" not in str(exc), str(exc)
