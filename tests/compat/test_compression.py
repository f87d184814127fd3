"""compress_conversation as the original: strategies truncate, summarize (LangChain chat model or the original's
client interface), semantic (LangChain Embeddings), hybrid; results and errors shaped as the original's. Models
are LangChain's fake chat model and deterministic embeddings: no network."""

from __future__ import annotations

import re
from typing import Any

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from contextkit import hookimpl
from contextkit.compat import CompressionConfig, ContextEngine, ConversationMessage
from contextkit.errors import InvalidInput
from contextkit.plugins import PluginManager


class OriginalInterfaceClient:
    """The original's LLM client interface: ``await generate_text(messages=..., max_tokens=...)`` -> ``.content``."""

    provider_name = "recording"

    def __init__(self, answer: str = "they talked", fail: bool = False) -> None:
        self.answer = answer
        self.fail = fail
        self.prompts: list[str] = []

    class Response:
        def __init__(self, content: str) -> None:
            self.content = content

    async def generate_text(self, messages: list[Any], max_tokens: int | None = None) -> Response:
        self.prompts.append(messages[-1].content)
        if self.fail:
            raise RuntimeError("the model is down")
        return self.Response(self.answer)


class BagOfWords(Embeddings):
    """Deterministic embeddings: one dimension per word of a fixed vocabulary."""

    VOCABULARY = ("python", "code", "bug", "weather", "rain", "pasta", "cooking", "sunny")

    def _vector(self, text: str) -> list[float]:
        words = re.findall(r"[a-z]+", text.lower())
        return [float(words.count(w)) for w in self.VOCABULARY]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text)


async def _fill(engine: ContextEngine, sid: str, count: int, text: str = "Message") -> None:
    for i in range(count):
        await engine.add_conversation_message(sid, "user" if i % 2 == 0 else "assistant", f"{text} {i}", {"index": i})


async def _contents(engine: ContextEngine, sid: str) -> list[str]:
    return [m.content for m in await engine.get_conversation_history(sid, limit=0)]


async def test_truncate_reports_the_fraction_removed(make_engine: Any) -> None:
    engine = await make_engine(compression_config=CompressionConfig(strategy="truncate", keep_recent=5))
    await _fill(engine, "s1", 20)
    result = await engine.compress_conversation("s1", strategy="truncate")
    assert result["success"] is True and result["strategy"] == "truncate"
    assert (result["original_count"], result["compressed_count"], result["compression_ratio"]) == (20, 5, 0.75)
    assert await _contents(engine, "s1") == [f"Message {i}" for i in range(15, 20)]


async def test_the_whole_history_is_compressed_not_the_last_50(make_engine: Any) -> None:
    engine = await make_engine(compression_config=CompressionConfig(keep_recent=100))
    await _fill(engine, "s1", 120)
    result = await engine.compress_conversation("s1")
    assert (result["original_count"], result["compressed_count"]) == (120, 100)
    assert await _contents(engine, "s1") == [f"Message {i}" for i in range(20, 120)]


async def test_summarize_with_a_langchain_chat_model(make_engine: Any) -> None:
    model = FakeListChatModel(responses=["They discussed AI."])
    engine = await make_engine(compression_config=CompressionConfig(strategy="summarize", keep_recent=3), llm_client=model)
    await _fill(engine, "s1", 8)
    result = await engine.compress_conversation("s1")
    assert result["success"] is True and (result["original_count"], result["compressed_count"]) == (8, 4)
    summary, *recent = await engine.get_conversation_history("s1", limit=0)
    assert summary.role == "system"
    assert summary.metadata == {"type": "summary", "summarized_count": 5}
    assert summary.content == "[Summary of 5 previous messages]\n\nThey discussed AI."
    assert [m.content for m in recent] == ["Message 5", "Message 6", "Message 7"]


async def test_summarize_with_the_original_client_interface_and_a_prompt_template(make_engine: Any) -> None:
    client = OriginalInterfaceClient()
    config = CompressionConfig(
        strategy="summarize", keep_recent=2, summary_prompt_template="Briefly:\n{messages}\nSummary:"
    )
    engine = await make_engine(compression_config=config, llm_client=client)
    await _fill(engine, "s1", 5)
    result = await engine.compress_conversation("s1")
    assert result["compressed_count"] == 3
    assert client.prompts == ["Briefly:\nuser: Message 0\n\nassistant: Message 1\n\nuser: Message 2\nSummary:"]
    engine.compression_summary_role = "user"
    engine.compression_config = CompressionConfig(strategy="summarize", keep_recent=1, include_summary_in_history=False)
    await _fill(engine, "s1", 2, "More")
    assert (await engine.compress_conversation("s1"))["compressed_count"] == 1
    assert await _contents(engine, "s1") == ["More 1"]


async def test_strategy_failures_return_success_false_and_keep_the_history(make_engine: Any) -> None:
    engine = await make_engine(compression_config=CompressionConfig(keep_recent=2))
    await _fill(engine, "s1", 6)
    before = await _contents(engine, "s1")
    invalid = await engine.compress_conversation("s1", strategy="invalid_strategy")
    assert invalid["success"] is False and "invalid_strategy" in invalid["error"]
    no_llm = await engine.compress_conversation("s1", strategy="summarize")
    assert no_llm["success"] is False and "LLM" in no_llm["error"]
    no_embeddings = await engine.compress_conversation("s1", strategy="semantic")
    assert no_embeddings["success"] is False and "embeddings" in no_embeddings["error"]
    engine.llm_client = OriginalInterfaceClient(fail=True)
    failing = await engine.compress_conversation("s1", strategy="summarize")
    assert failing["success"] is False and "the model is down" in failing["error"]
    assert await _contents(engine, "s1") == before
    empty = await engine.compress_conversation("never-written")
    assert empty == {"success": False, "error": "No messages to compress", "original_count": 0, "compressed_count": 0}


async def test_semantic_keeps_the_older_messages_relevant_to_the_recent_turns(make_engine: Any) -> None:
    config = CompressionConfig(strategy="semantic", keep_recent=2, similarity_threshold=0.95)
    engine = await make_engine(compression_config=config, embeddings=BagOfWords())
    engine.compaction_options = {"semantic_keep": 2}
    for text in (
        "sunny weather today",
        "python code review",
        "cooking pasta tonight",
        "python code review",  # a near-duplicate of an older message: kept once
        "rain and weather",
        "the python code has a bug",
        "fix the bug in python code",
    ):
        await engine.add_conversation_message("s1", "user", text)
    result = await engine.compress_conversation("s1")
    assert result["success"] is True and result["strategy"] == "semantic"
    assert await _contents(engine, "s1") == [
        "python code review",
        "rain and weather",
        "the python code has a bug",
        "fix the bug in python code",
    ]


async def test_semantic_with_langchain_deterministic_fake_embeddings(make_engine: Any) -> None:
    embeddings = DeterministicFakeEmbedding(size=16)
    engine = await make_engine(compression_config=CompressionConfig(keep_recent=3), embeddings=embeddings)
    await _fill(engine, "s1", 10)
    result = await engine.compress_conversation("s1", strategy="semantic")
    assert result["success"] is True and 3 <= result["compressed_count"] <= 6
    assert (await _contents(engine, "s1"))[-3:] == ["Message 7", "Message 8", "Message 9"]


async def test_hybrid_runs_its_strategies_in_order(make_engine: Any) -> None:
    model = FakeListChatModel(responses=["summary"])
    engine = await make_engine(compression_config=CompressionConfig(strategy="hybrid", keep_recent=5), llm_client=model)
    await _fill(engine, "s1", 15)
    result = await engine.compress_conversation("s1")  # truncate, then summarize (nothing left to summarise)
    assert result["strategy"] == "hybrid" and result["compressed_count"] == 5
    config = CompressionConfig(strategy="hybrid", keep_recent=2, hybrid_strategies=["no_such", "summarize"])
    result = await engine.compress_conversation("s1", config_override=config)
    assert result["success"] is True and result["compressed_count"] == 3
    assert (await engine.get_conversation_history("s1"))[0].metadata["type"] == "summary"


async def test_config_objects_and_assigned_settings_take_effect(make_engine: Any) -> None:
    engine = await make_engine(compression_config=CompressionConfig(keep_recent=10))
    await _fill(engine, "s1", 20)
    assert (await engine.compress_conversation("s1", config_override=CompressionConfig(keep_recent=7)))["compressed_count"] == 7
    engine.compression_config = CompressionConfig(keep_recent=4)
    assert (await engine.compress_conversation("s1"))["compressed_count"] == 4
    engine.llm_client = FakeListChatModel(responses=["late summary"])
    engine.compression_config = CompressionConfig(strategy="summarize", keep_recent=1)
    result = await engine.compress_conversation("s1")
    assert result["success"] is True and result["compressed_count"] == 2


async def test_auto_compress_honours_auto_compress_enabled(make_engine: Any) -> None:
    config = CompressionConfig(auto_compress_enabled=False, auto_compress_threshold=10, auto_compress_target=5)
    engine = await make_engine(compression_config=config)
    await _fill(engine, "s1", 15)
    assert await engine.auto_compress_on_limit("s1") is None
    assert len(await engine.get_conversation_history("s1", limit=0)) == 15
    engine.compression_config = CompressionConfig(auto_compress_enabled=True, auto_compress_threshold=10, auto_compress_target=5)
    result = await engine.auto_compress_on_limit("s1")
    assert result is not None and (result["original_count"], result["compressed_count"]) == (15, 5)


async def test_add_conversation_message_takes_a_strategy(make_engine: Any) -> None:
    model = FakeListChatModel(responses=["rolled up"])
    config = CompressionConfig(max_messages=4, keep_recent=2)
    engine = await make_engine(compression_config=config, llm_client=model, compress_on_append=True)
    for i in range(4):
        assert await engine.add_conversation_message("s1", "user", f"m{i}", strategy="summarize")
    assert len(await engine.get_conversation_history("s1")) == 4  # not above max_messages yet
    await engine.add_conversation_message("s1", "user", "m4", strategy="summarize")
    history = await engine.get_conversation_history("s1")
    assert [m.content for m in history[1:]] == ["m3", "m4"] and history[0].metadata["type"] == "summary"
    plain = await make_engine()
    assert await plain.add_conversation_message("s2", "user", "x", strategy="truncate")  # accepted, no compaction


async def test_get_compressed_context_formats(make_engine: Any) -> None:
    engine = await make_engine(compression_config=CompressionConfig(keep_recent=3))
    await _fill(engine, "s1", 5)
    rows = await engine.get_compressed_context("s1", format="dict", compress_first=True)
    assert [r["content"] for r in rows] == ["Message 2", "Message 3", "Message 4"]
    text = await engine.get_compressed_context("s1", format="string")
    assert "user: Message 2" in text and "assistant: Message 3" in text
    messages = await engine.get_compressed_context("s1")  # format="messages", the default
    assert [(m.role, m.content) for m in messages] == [("user", "Message 2"), ("assistant", "Message 3"), ("user", "Message 4")]
    assert all(isinstance(m, ConversationMessage) for m in messages)


async def test_get_compressed_context_refuses_an_unknown_format_before_compressing(make_engine: Any) -> None:
    """A format it does not know raises InvalidInput, and with ``compress_first`` nothing was compacted."""
    engine = await make_engine(compression_config=CompressionConfig(keep_recent=2))
    await _fill(engine, "s1", 5)
    with pytest.raises(InvalidInput, match="format must be"):
        await engine.get_compressed_context("s1", format="xml", compress_first=True)
    assert await _contents(engine, "s1") == [f"Message {i}" for i in range(5)]


async def test_compress_on_append_if_needed_compacts_only_when_on_and_above_max_messages(make_engine: Any) -> None:
    """The original's public ``compress_on_append_if_needed`` (AIECS hosts call it after persisting turns): None
    with ``compress_on_append`` off or at ``max_messages`` or fewer; above, it compacts with the configured
    strategy, a named one, or a sequence of names run as ``hybrid``."""
    config = CompressionConfig(max_messages=4, keep_recent=2)
    off = await make_engine(compression_config=config)
    await _fill(off, "s1", 6)
    assert await off.compress_on_append_if_needed("s1") is None
    assert len(await _contents(off, "s1")) == 6

    engine = await make_engine(compression_config=config, compress_on_append=True)
    await _fill(engine, "s2", 4)  # add_conversation_message calls it too: at max_messages, nothing happens
    assert await engine.compress_on_append_if_needed("s2") is None
    assert len(await _contents(engine, "s2")) == 4
    engine.compress_on_append = False  # fill past the limit without compacting on each append
    await _fill(engine, "s3", 7)
    engine.compress_on_append = True
    result = await engine.compress_on_append_if_needed("s3", strategy="truncate")
    assert result is not None and result["success"] and result["strategy"] == "truncate"
    assert (result["original_count"], result["compressed_count"]) == (7, 2)
    assert await _contents(engine, "s3") == ["Message 5", "Message 6"]

    engine.compress_on_append = False
    await _fill(engine, "s4", 6)
    engine.compress_on_append = True
    chained = await engine.compress_on_append_if_needed("s4", strategy=["truncate"])
    assert chained is not None and chained["success"] and chained["strategy"] == "hybrid"
    assert await _contents(engine, "s4") == ["Message 4", "Message 5"]


class _DropSystemPlugin:
    """A third-party strategy: drops system messages."""

    @hookimpl
    def contextkit_register_compactors(self, registry: Any) -> None:
        async def drop_system(messages: list[Any], keep_recent: int, options: Any) -> list[Any]:
            return [m for m in messages if m.role != "system"]

        registry.add("drop_system", drop_system)


async def test_hybrid_runs_third_party_strategies(make_engine: Any) -> None:
    plugins = PluginManager()
    plugins.register(_DropSystemPlugin(), name="drop-system")
    config = CompressionConfig(strategy="hybrid", keep_recent=3, hybrid_strategies=["drop_system", "truncate"])
    engine = await make_engine(compression_config=config, plugins=plugins)
    for role in ("system", "user", "system", "user", "assistant", "system"):
        await engine.add_conversation_message("s1", role, f"{role} message")
    result = await engine.compress_conversation("s1")
    assert result["success"] is True and result["compressed_count"] == 3
    assert [m.role for m in await engine.get_conversation_history("s1")] == ["user", "user", "assistant"]
