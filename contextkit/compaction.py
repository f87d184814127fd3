"""History compaction: the built-in strategies ``truncate``, ``summarize``, ``semantic`` and ``hybrid``.

A compactor receives the *whole* kept history of a stream and returns the history to keep. The kit replaces the
stream atomically with the result, so a compactor can never drop messages it did not see (the seed's
compression read only 50 messages and deleted the rest). Strategies are registered through the
``contextkit_register_compactors`` hook like any plugin's; the options come from ``kit.compaction_options``
(the facade fills them from its ``CompressionConfig``, ``llm_client`` and ``embeddings``) and the call's
``config_override``.

Options the built-ins read (the names of the original's ``CompressionConfig``):

- ``summarize``: ``llm_client`` (a LangChain ``BaseChatModel``, or an object with the original's LLM client
  interface: ``await generate_text(messages=[...], max_tokens=n)`` returning an object with ``content``),
  ``summary_prompt_template`` (``{messages}`` is replaced by the summarised messages), ``summary_max_tokens``,
  ``include_summary_in_history``, ``summary_role`` (``system`` by default), ``compression_timeout`` (seconds).
  The result is one summary message (metadata ``{"type": "summary", "summarized_count": n}``, content starting
  ``[Summary of n previous messages]``) followed by the newest ``keep_recent`` messages.
- ``semantic``: ``embeddings`` (a LangChain ``Embeddings``) or an ``llm_client`` with the original's
  ``await get_embeddings(texts=[...], model=...)``; ``embedding_model``, ``similarity_threshold``,
  ``semantic_keep`` (how many older messages to keep, ``keep_recent`` by default). It keeps the newest
  ``keep_recent`` messages and, of the older ones, those most relevant to them (highest cosine similarity to any
  recent message), leaving out near-duplicates (similarity at or above ``similarity_threshold`` to a kept one).
- ``hybrid``: runs ``hybrid_strategies`` (``["truncate", "summarize"]`` by default) one after the other; any
  registered strategy may be named (the kit passes its registry as the option ``compactors``).

A strategy that cannot run (no model configured, the model fails or times out) raises; the kit then returns
``{"success": False, "error": ...}`` and leaves the history unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from contextkit.errors import ConfigError
from contextkit.hookspecs import hookimpl
from contextkit.records import Message, utcnow

if TYPE_CHECKING:
    from contextkit.plugins import CompactorRegistry

__all__ = ["LLMMessage", "hybrid", "semantic", "summarize", "truncate"]

logger = logging.getLogger("contextkit.compaction")

Compactor = Callable[[list[Message], int, Mapping[str, Any]], Awaitable[list[Message]]]

_DEFAULT_PROMPT = (
    "Please provide a concise summary of the following conversation.\n"
    "Focus on key points, decisions, and important information.\n"
    "Keep the summary under {max_tokens} tokens.\n\nConversation:\n{messages}\n\nSummary:"
)
_SYSTEM_PROMPT = "You are a conversation summarizer."


@dataclass
class LLMMessage:
    """A chat message handed to an LLM client with the original's interface (``role``, ``content``)."""

    role: str
    content: str


async def truncate(messages: list[Message], keep_recent: int, options: Mapping[str, Any]) -> list[Message]:
    """Keep the newest ``keep_recent`` messages, unchanged and in order."""
    if keep_recent <= 0:
        return []
    return list(messages[-keep_recent:])


def _split(messages: list[Message], keep_recent: int) -> tuple[list[Message], list[Message]]:
    if keep_recent <= 0:
        return list(messages), []
    return list(messages[:-keep_recent]), list(messages[-keep_recent:])


def _timeout(options: Mapping[str, Any]) -> float | None:
    value = options.get("compression_timeout", 30.0)
    return None if value is None else float(value)


async def _ask_model(model: Any, prompt: str, options: Mapping[str, Any]) -> str:
    """The text a chat model answers to ``prompt``: the original's client interface or a LangChain chat model."""
    max_tokens = int(options.get("summary_max_tokens", 500))
    if callable(getattr(model, "generate_text", None)):
        call: Awaitable[Any] = model.generate_text(
            messages=[LLMMessage("system", _SYSTEM_PROMPT), LLMMessage("user", prompt)], max_tokens=max_tokens
        )
    elif callable(getattr(model, "ainvoke", None)):
        call = model.ainvoke([("system", _SYSTEM_PROMPT), ("human", prompt)])
    else:
        raise ConfigError(
            f"llm_client {type(model).__name__} is neither a LangChain chat model (ainvoke) nor a client with "
            "generate_text(messages=..., max_tokens=...)"
        )
    response = await asyncio.wait_for(call, _timeout(options))
    content = getattr(response, "content", response)
    if isinstance(content, list):  # LangChain content blocks
        content = "".join(b if isinstance(b, str) else str(b.get("text", "")) for b in content if b)
    text = str(content or "").strip()
    if not text:
        raise RuntimeError("the model returned an empty summary")
    return text


def _transcript(messages: Sequence[Message]) -> str:
    return "\n\n".join(f"{m.role}: {m.content}" for m in messages)


async def summarize(messages: list[Message], keep_recent: int, options: Mapping[str, Any]) -> list[Message]:
    """Replace the messages older than the newest ``keep_recent`` by one summary written by ``llm_client``."""
    model = options.get("llm_client")
    if model is None:
        raise ConfigError(
            "the summarize strategy needs an LLM: set llm_client (a LangChain chat model or a client with "
            "generate_text) on the engine or in the options"
        )
    if len(messages) <= keep_recent:
        return list(messages)
    older, recent = _split(messages, keep_recent)
    template = options.get("summary_prompt_template")
    text = _transcript(older)
    if template:
        prompt = str(template).format(messages=text)
    else:
        prompt = _DEFAULT_PROMPT.format(messages=text, max_tokens=int(options.get("summary_max_tokens", 500)))
    summary = await _ask_model(model, prompt, options)
    if not options.get("include_summary_in_history", True):
        return recent
    if not summary.startswith("[Summary of"):
        summary = f"[Summary of {len(older)} previous messages]\n\n{summary}"
    message = Message(
        role=str(options.get("summary_role") or "system"),
        content=summary,
        timestamp=utcnow(),
        metadata={"type": "summary", "summarized_count": len(older)},
    )
    return [message, *recent]


async def _embed(texts: list[str], options: Mapping[str, Any]) -> list[list[float]]:
    embeddings = options.get("embeddings")
    client = options.get("llm_client")
    if embeddings is not None and callable(getattr(embeddings, "aembed_documents", None)):
        call: Awaitable[Any] = embeddings.aembed_documents(texts)
    elif embeddings is not None and callable(getattr(embeddings, "get_embeddings", None)):
        call = embeddings.get_embeddings(texts=texts, model=options.get("embedding_model"))
    elif client is not None and callable(getattr(client, "aembed_documents", None)):
        call = client.aembed_documents(texts)
    elif client is not None and callable(getattr(client, "get_embeddings", None)):
        call = client.get_embeddings(texts=texts, model=options.get("embedding_model"))
    else:
        raise ConfigError(
            "the semantic strategy needs embeddings: set embeddings (a LangChain Embeddings) or an llm_client with "
            "get_embeddings(texts=..., model=...)"
        )
    vectors = await asyncio.wait_for(call, _timeout(options))
    result = [[float(x) for x in v] for v in vectors]
    if len(result) != len(texts):
        raise RuntimeError(f"the embeddings model returned {len(result)} vectors for {len(texts)} texts")
    return result


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


async def semantic(messages: list[Message], keep_recent: int, options: Mapping[str, Any]) -> list[Message]:
    """Keep the newest ``keep_recent`` messages and the older ones most relevant to them, without near-duplicates."""
    if len(messages) <= keep_recent:
        return list(messages)
    older, recent = _split(messages, keep_recent)
    vectors = await _embed([m.content for m in messages], options)
    old_vectors, recent_vectors = vectors[: len(older)], vectors[len(older) :]
    threshold = float(options.get("similarity_threshold", 0.95))
    budget = int(options.get("semantic_keep", keep_recent))
    if not recent_vectors:
        # Nothing recent to be relevant to: relevance is to the conversation as a whole (its mean vector).
        width = len(old_vectors[0]) if old_vectors else 0
        recent_vectors = [[sum(v[i] for v in old_vectors) / len(old_vectors) for i in range(width)]]
    relevance = [max(_cosine(v, r) for r in recent_vectors) for v in old_vectors]
    kept: list[int] = []
    kept_vectors = [] if keep_recent <= 0 else list(vectors[len(older) :])
    for index in sorted(range(len(older)), key=lambda i: (-relevance[i], -i)):
        if len(kept) >= budget:
            break
        if any(_cosine(old_vectors[index], v) >= threshold for v in kept_vectors):
            continue  # a near-duplicate of a message already kept
        kept.append(index)
        kept_vectors.append(old_vectors[index])
    return [older[i] for i in sorted(kept)] + recent


async def hybrid(messages: list[Message], keep_recent: int, options: Mapping[str, Any]) -> list[Message]:
    """Run the strategies named in ``hybrid_strategies`` one after the other (unknown names are skipped with a
    warning, as the original did)."""
    names = options.get("hybrid_strategies") or ["truncate", "summarize"]
    registry = options.get("compactors")
    result = list(messages)
    for name in names:
        step: Compactor | None = _BUILT_IN.get(str(name))
        if registry is not None and str(name) in registry.names():
            step = registry.get(str(name))
        if step is None or step is hybrid:
            logger.warning("hybrid compression: unknown strategy %r skipped", name)
            continue
        result = await step(result, keep_recent, options)
    return result


_BUILT_IN: dict[str, Compactor] = {"truncate": truncate, "summarize": summarize, "semantic": semantic, "hybrid": hybrid}


@hookimpl
def contextkit_register_compactors(registry: CompactorRegistry) -> None:
    """Register the built-in strategies."""
    for name, compactor in _BUILT_IN.items():
        registry.add(name, compactor)
