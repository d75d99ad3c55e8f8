"""A stand-in for a model and a retriever, so the example runs offline."""

from __future__ import annotations

import time
from collections.abc import Iterator

import neatlogs_web


def retrieve(message: str) -> list[str]:
    """Blocking I/O, as an ORM query or a vector store client would be."""
    with neatlogs_web.trace("retrieval", query=message):
        time.sleep(0.005)
        return [f"doc about {word}" for word in message.split()[:3]]


def complete(message: str, documents: list[str]) -> Iterator[str]:
    with neatlogs_web.trace("llm", model="fake-llm", documents=len(documents)) as span:
        words = f"You said: {message}".split()
        yield from (f"{word} " for word in words)
        span.set_attribute("gen_ai.usage.output_tokens", len(words))
