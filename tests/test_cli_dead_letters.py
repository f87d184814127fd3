"""``contextkit dead-letters`` without a server: usage errors and the tiers without durable letters. The durable
cases (a SQLite outbox, PostgreSQL refusing an event) are in ``tests/integration/test_archive_refusals.py``."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from contextkit.cli import cli


def _config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "contextkit.toml"
    path.write_text(text)
    return str(path)


def test_without_a_cold_tier_there_are_no_dead_letters(tmp_path: Path) -> None:
    config = _config(tmp_path, f'hot = {{backend = "sqlite", path = "{tmp_path / "hot.db"}"}}\n')
    result = CliRunner().invoke(cli, ["--config", config, "dead-letters", "list"], obj={})
    assert result.exit_code == 2
    assert "no cold tier is configured" in result.output


def test_a_sqlite_pair_lists_none_and_replays_none(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        f'hot = {{backend = "sqlite", path = "{tmp_path / "hot.db"}"}}\n'
        f'cold = {{backend = "sqlite", path = "{tmp_path / "cold.db"}"}}\n',
    )
    runner = CliRunner()
    listed = runner.invoke(cli, ["--config", config, "--json", "dead-letters", "list"], obj={})
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output) == {"total": 0, "letters": []}
    table = runner.invoke(cli, ["--config", config, "dead-letters", "list"], obj={})
    assert table.exit_code == 0 and "0 dead letter(s)" in table.output
    replayed = runner.invoke(cli, ["--config", config, "dead-letters", "replay"], obj={})
    assert replayed.exit_code == 0 and "replayed 0 dead letter(s)" in replayed.output
    bad = runner.invoke(cli, ["--config", config, "dead-letters", "list", "--limit", "0"], obj={})
    assert bad.exit_code == 2 and "--limit must be positive" in bad.output
