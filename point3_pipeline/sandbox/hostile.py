"""What a broken or hostile upstream sends: junk payments, non-JSON bodies, dripped bytes.

The Faults that use these (endless_pages, cycle_pages, garbage_body_bytes,
drip_bytes_per_second) exist to prove the client and the sync bound every wait and loop.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import orjson

from point3_pipeline.sandbox.data import PaymentFactory

# ASCII, so the body decodes and reaches a JSON parser (and any repair) before it fails.
_GARBAGE_LINE = b"<p>point3 sandbox: this body is not JSON (garbage_body_bytes fault)</p>\n"
DRIP_TICKS_PER_SECOND = 10  # a dripped body comes in rate/10-byte pieces, 10 a second


def junk_payments(seed: str, epochs: list[int]) -> list[bytes]:
    """Plausible payments that exist nowhere else, one per accept time; the same seed, the same records."""
    factory = PaymentFactory(random.Random(seed), 0)
    return [orjson.dumps({**factory.record(epoch), "isCanceled": False}) for epoch in epochs]


def junk_page(seed: str, first: int, last: int, count: int) -> list[bytes]:
    """`count` junk payments accepted between epoch seconds `first` and `last`, in time order."""
    rng = random.Random(seed + ":times")
    return junk_payments(seed, sorted(rng.randint(first, max(first, last)) for _ in range(count)))


def garbage_body(size: int) -> bytes:
    """`size` bytes of text that is not JSON."""
    repeats, rest = divmod(size, len(_GARBAGE_LINE))
    return _GARBAGE_LINE * repeats + _GARBAGE_LINE[:rest]


async def dripped(body: bytes, bytes_per_second: int) -> AsyncIterator[bytes]:
    """`body` in small pieces at `bytes_per_second`: the first at once, each next one after its share of a second."""
    step = max(1, bytes_per_second // DRIP_TICKS_PER_SECOND)
    for start in range(0, len(body), step):
        if start:
            await asyncio.sleep(step / bytes_per_second)
        yield body[start:start + step]
