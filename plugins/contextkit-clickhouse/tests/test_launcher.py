"""The test ClickHouse launcher (contextkit.testing.services.clickhouse_server): clear errors when a server cannot start.

Starting, killing and restarting a real server on the same port and data directory is exercised by the session
fixture and by ``test_kill.py``; these tests need no ClickHouse.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from contextkit.testing.services.clickhouse_server import ClickHouseServer, ClickHouseServerError


class CrashingServer(ClickHouseServer):
    """A launcher whose child fails the way ClickHouse does on a port conflict."""

    def _command(self) -> list[str]:
        return [
            sys.executable,
            "-c",
            "import sys; sys.stderr.write('Code: 210. DB::Exception: Listen failed: Address already in use'); sys.exit(1)",
        ]


def test_a_server_that_exits_early_reports_its_exit_code_and_stderr(tmp_path: Path) -> None:
    """When the child exits before /ping answers, start() raises at once with the exit code and stderr tail."""
    server = CrashingServer(tmp_path, start_timeout=30)
    with pytest.raises(ClickHouseServerError, match=r"exited with code 1[\s\S]*Address already in use"):
        server.start()
    assert not server.running
    assert (tmp_path / "config" / "config.xml").read_text().count(f"<http_port>{server.port}</http_port>") == 1


def test_a_busy_port_is_refused_before_starting(tmp_path: Path) -> None:
    """A port another process listens on is refused up front (that process could otherwise answer /ping)."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        server = ClickHouseServer(tmp_path, port=squatter.getsockname()[1])
        with pytest.raises(ClickHouseServerError, match="already in use"):
            server.start()
        assert not server.running


def test_config_binds_loopback_and_defines_the_extra_user(tmp_path: Path) -> None:
    """The generated config listens on 127.0.0.1 only, and users.xml holds the requested user and password."""
    server = ClickHouseServer(tmp_path, user="tester", password="s3<cret>")
    server._write_config()
    config = (tmp_path / "config" / "config.xml").read_text()
    users = (tmp_path / "config" / "users.xml").read_text()
    assert "<listen_host>127.0.0.1</listen_host>" in config
    assert "<tester><password>s3&lt;cret&gt;</password>" in users
    assert "s3<cret>" not in repr(server)
