"""History: ``get_conversation_history(limit=50)`` latency with 10 ... 100,000 messages in the session, per hot tier.

The kit's ``history_cap`` is set to the largest size so the stream really holds that many messages. Streams are
filled through the hot tier's ``append_messages`` in batches (filling is not what is measured). The bar (issue 8):
the read stays flat, at most 1.2x from the smallest to the largest stream.
"""

from __future__ import annotations

from functools import partial

from benchmarks.context import BenchContext
from benchmarks.measure import time_interleaved
from benchmarks.report import Row, Target
from contextkit import ContextKit
from contextkit.records import Message, utcnow

__all__ = ["fill_history", "run"]

GROUP = "history"
FILL_BATCH = 1_000


async def fill_history(hot: object, key: str, count: int) -> None:
    """Append ``count`` ~200-byte messages to stream ``key`` in batches of 1,000."""
    now = utcnow()
    done = 0
    while done < count:
        batch = [
            Message(role="user" if (done + j) % 2 else "assistant", content=f"message {done + j} " + "x" * 180,
                    timestamp=now, metadata={"n": done + j})
            for j in range(min(FILL_BATCH, count - done))
        ]
        await hot.append_messages(key, batch)  # type: ignore[attr-defined]
        done += len(batch)


async def _read(kit: ContextKit, sid: str, i: int) -> object:
    return await kit.get_conversation_history(sid, limit=50)


def case_name(size: int) -> str:
    """The case label of one stream length."""
    return f"last-50 read @ {size:,} msgs"


async def run(ctx: BenchContext) -> None:
    """Each hot tier: fill one stream per length, then time the reads of every length in alternating chunks."""
    lengths = ctx.sizes.history
    for tier in ctx.tiers:
        subject = f"contextkit {tier}"
        smallest = f"{case_name(lengths[0])} / {subject}"
        try:
            async with ctx.kit(tier, history_cap=max(lengths)) as kit:
                ops = {}
                for length in lengths:
                    ctx.progress(f"history: {tier}, filling {length:,} messages")
                    sid = f"history-{length}"
                    await kit.create_session(sid, user_id="bench")
                    await fill_history(kit.hot, sid, length)
                    held = await kit.hot.history_length(sid)
                    got = await kit.get_conversation_history(sid, limit=50)
                    if len(got) != min(50, length) or held != length:
                        raise RuntimeError(f"{tier}: stream holds {held} (expected {length}), read {len(got)}")
                    ops[case_name(length)] = partial(_read, kit, sid)
                ctx.progress(f"history: {tier}, reading")
                for case, timing in (await time_interleaved(ops, ctx.sizes)).items():
                    if isinstance(timing, BaseException):
                        raise timing
                    length = int(case.split("@ ")[1].split()[0].replace(",", ""))
                    note = f"returns {min(50, length)}"
                    ctx.report.add(Row(GROUP, case, subject, timing, baseline=smallest, note=note))
        except Exception as exc:  # a tier that breaks mid-run skips its remaining rows; the run goes on
            ctx.skip_rest(GROUP, [case_name(n) for n in lengths], subject, exc)
        ctx.report.expect(
            Target(GROUP, f"{tier}: last-50 read flat, <= 1.2x from {lengths[0]:,} to {lengths[-1]:,} messages",
                   row=f"{case_name(lengths[-1])} / {subject}", against=(smallest,), max_ratio=1.2, source="issue 8")
        )
        full = [n for n in lengths if n >= 50]
        if len(full) >= 2:
            # the 10-message stream returns 10 messages, the others 50: this one compares equal work
            ctx.report.expect(Target(
                GROUP, f"{tier}: same, from {full[0]:,} (first full window of 50) to {full[-1]:,} messages",
                row=f"{case_name(full[-1])} / {subject}", against=(f"{case_name(full[0])} / {subject}",),
                max_ratio=1.2, source="issue 8 (equal work)",
            ))
