"""The command line: config errors stop start-up with one line and status 2; the server runs."""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys

import pytest

from mjpeg_proxy.cli import main, new_event_loop
from tests.helpers import write
from tests.processes import REPO_ROOT, http_get, proxy_process


@pytest.fixture(autouse=True)
def _restore_root_logger():
    """``main`` calls ``logging.basicConfig``; keep that from leaking into other tests."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def assert_one_line_without_traceback(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert stderr.endswith("\n")
    return lines[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[[cameras]]\nid = "demo"\nsource = "demo"\ncolour = 1\n', ["camera 'demo'", "field 'colour'"]),
        ('[[cameras]]\nid = "demo"\nsource = "demo"\nfps = 31\n', ["camera 'demo'", "field 'fps'"]),
        ('[[cameras]]\nsource = "demo"\n', ["camera #1", "field 'id'"]),
        (
            '[[cameras]]\nid = "garage"\nsource = "snapshot"\nurl = "http://admin:pw-xyz@cam.example/a.jpg"\n',
            ["camera 'garage'", "field 'url'"],
        ),
        ('[server]\nport = 70000\n[[cameras]]\nid = "demo"\nsource = "demo"\n', ["[server]", "field 'port'"]),
        ('[[cameras]\nid = "demo"\n', ["invalid TOML"]),
        ("", ["no cameras"]),
    ],
    ids=["unknown-key", "fps", "missing-id", "url-credentials", "port", "bad-toml", "no-cameras"],
)
def test_config_error_returns_2_with_one_line_on_stderr(tmp_path, capsys, text, expected):
    path = write(tmp_path, text)
    assert main(["--config", path]) == 2
    captured = capsys.readouterr()
    line = assert_one_line_without_traceback(captured.err)
    assert line.startswith("mjpeg-proxy: configuration error: ")
    assert path in line
    for part in expected:
        assert part in line
    assert "pw-xyz" not in line
    assert captured.out == ""


def test_unset_password_env_returns_2_naming_the_variable(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MJPEG_PROXY_TEST_UNSET_PASSWORD", raising=False)
    path = write(
        tmp_path,
        '[[cameras]]\nid = "garage"\nsource = "snapshot"\nurl = "http://cam.example/a.jpg"\n'
        'username = "viewer"\npassword_env = "MJPEG_PROXY_TEST_UNSET_PASSWORD"\n',
    )
    assert main(["--config", path]) == 2
    line = assert_one_line_without_traceback(capsys.readouterr().err)
    for part in (path, "camera 'garage'", "field 'password_env'", "MJPEG_PROXY_TEST_UNSET_PASSWORD"):
        assert part in line


def test_password_env_read_from_the_environment(tmp_path, capsys, monkeypatch):
    """A set variable passes the config check; a bad --port then stops start-up before listening."""
    monkeypatch.setenv("MJPEG_PROXY_TEST_PASSWORD", "pw")
    path = write(
        tmp_path,
        '[[cameras]]\nid = "garage"\nsource = "snapshot"\nurl = "http://cam.example/a.jpg"\n'
        'username = "viewer"\npassword_env = "MJPEG_PROXY_TEST_PASSWORD"\n',
    )
    assert main(["--config", path, "--port", "0"]) == 2
    line = assert_one_line_without_traceback(capsys.readouterr().err)
    assert "--port" in line
    assert "configuration error" not in line


def test_missing_config_file_returns_2(tmp_path, capsys):
    path = str(tmp_path / "nowhere.toml")
    assert main(["--config", path]) == 2
    line = assert_one_line_without_traceback(capsys.readouterr().err)
    assert path in line
    assert "cannot read" in line


@pytest.mark.parametrize("port", ["0", "65536", "-1"])
def test_port_out_of_range_on_command_line_returns_2(capsys, port):
    assert main(["--port", port]) == 2
    line = assert_one_line_without_traceback(capsys.readouterr().err)
    assert "--port" in line
    assert port in line


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--config", "--host", "--port", "--log-level", "--event-loop"):
        assert option in out
    for level in ("debug", "info", "warning", "error"):
        assert level in out


@pytest.mark.parametrize("option", ["--config", "--host"])
def test_empty_config_or_host_is_refused(capsys, option):
    # "--host $HOST" with HOST unset must not listen everywhere, nor serve the demo by mistake.
    with pytest.raises(SystemExit) as info:
        main([option, ""])
    assert info.value.code == 2
    assert f"{option} must not be empty" in capsys.readouterr().err


def test_bad_log_level_exits_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--log-level", "verbose"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--log-level" in err
    assert "Traceback" not in err


def test_non_numeric_port_exits_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--port", "http"])
    assert info.value.code == 2
    assert "--port" in capsys.readouterr().err


def test_run_py_with_bad_config_exits_2_with_one_line(tmp_path):
    path = write(tmp_path, '[[cameras]]\nid = "Front Door"\nsource = "demo"\n')
    result = subprocess.run(
        [sys.executable, "run.py", "--config", path],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    line = assert_one_line_without_traceback(result.stderr)
    assert path in line
    assert "camera 'Front Door'" in line
    assert "field 'id'" in line
    assert result.stdout == ""


async def test_run_py_serves_the_demo_camera_and_stops_on_sigterm_with_viewers(tmp_path):
    async with proxy_process(tmp_path) as proxy:
        status, jpeg = http_get(f"{proxy.base}/cameras/demo/snapshot.jpg", timeout_s=10)
        assert status == 200
        assert jpeg.startswith(b"\xff\xd8")
        assert jpeg.endswith(b"\xff\xd9")

        # A scanner's malformed requests get a 400, and no traceback in the log.
        for junk in (b"GET /\x01\x02 HTTP/1.1\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"):
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as junk_socket:
                junk_socket.sendall(junk)
                assert b" 400 " in junk_socket.recv(100)

        # Two viewers watching when the server is told to stop.
        viewers = [socket.create_connection(("127.0.0.1", proxy.port), timeout=10) for _ in range(2)]
        for viewer in viewers:
            viewer.sendall(b"GET /cameras/demo/stream.mjpg HTTP/1.0\r\n\r\n")
            assert viewer.recv(65536).startswith(b"HTTP/1.0 200")
        took = await proxy.stop(signal.SIGTERM)
        stderr = proxy.stderr()
        assert proxy.process.returncode == 0, stderr
        assert took < 5, "the server must stop within 5 s even with viewers"
        assert "Traceback" not in stderr and "ERROR" not in stderr, stderr
        for viewer in viewers:
            while viewer.recv(65536):  # the stream ends: EOF, not a hang
                pass
            viewer.close()


def test_een_esn_without_credentials_exits_2_with_one_line(capsys, monkeypatch):
    monkeypatch.delenv("EEN_USERNAME", raising=False)
    monkeypatch.delenv("EEN_PASSWORD", raising=False)
    assert main(["--een-esn", "1006073b"]) == 2
    line = assert_one_line_without_traceback(capsys.readouterr().err)
    assert "EEN_USERNAME" in line and "EEN_PASSWORD" in line


def test_event_loop_is_asyncio_by_default_and_uvloop_on_request():
    uvloop = pytest.importorskip("uvloop")
    loops = [new_event_loop("asyncio"), new_event_loop("uvloop")]
    try:
        assert [isinstance(loop, uvloop.Loop) for loop in loops] == [False, True]
    finally:
        for loop in loops:
            loop.close()


def test_event_loop_uvloop_without_uvloop_exits_2_with_one_line(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now raises ImportError
    assert main(["--event-loop", "uvloop"]) == 2
    line = assert_one_line_without_traceback(capsys.readouterr().err)
    assert "uvloop is not installed" in line
