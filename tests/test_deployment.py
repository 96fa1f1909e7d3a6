"""The dashboard as deployed: a real `streamlit run dashboard.py`, alone and behind the guide's nginx
(docs/nginx/monitor.conf, run as it is written but for its name, ports, certificate and upstream).

The nginx tests need Debian's nginx (`make nginx`, or `apt-get install -y nginx`); without it they are
skipped, unless ``MONITOR_TEST_REQUIRE_NGINX`` is set (CI sets it), which makes a missing nginx a failure.
The checks on Streamlit alone always run.

What holds, and what does not, for a session id (Streamlit's WebSocket names the session to resume in its
``Sec-WebSocket-Protocol`` header):

* On Streamlit alone, a client that presents a live session's id resumes that session, with no cookie at
  all. Streamlit's XSRF cookie guards uploads and the reading of its own single sign-on cookie, not the
  resumption; a session is bound only to its ``user_info``, which for this dashboard's own password
  sign-in is the same (empty) for everyone. So the id alone is enough: it must never be shown or logged.
* Behind the guide's nginx, every browser gets an HttpOnly cookie with a random value that nginx forwards
  as a header Streamlit puts in the session's ``user_info`` (``server.trustedUserHeaders`` in
  .streamlit/config.toml). A client without that cookie that presents the id gets a new session; the
  browser holding it resumes its own.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from websockets.exceptions import InvalidHandshake, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from db.store import open_store
from tests.conftest import ROOT
from tests.test_browser import STARTUP_SECONDS, _free_loopback_port, _healthy, _stop

GUIDE = ROOT / "docs" / "deployment.md"
CONFIG = ROOT / "docs" / "nginx" / "monitor.conf"
SITE = "monitor.test"
FOREIGN = "evil.example"
REQUIRE_NGINX = "MONITOR_TEST_REQUIRE_NGINX"
TIMEOUT = 30


@dataclass(frozen=True)
class Proxy:
    """The guide's nginx in front of a dashboard: its HTTPS and HTTP ports and the certificate it shows."""

    tls_port: int
    plain_port: int
    certificate: Path


def _launch(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_loopback_port()
    command = [sys.executable, "-m", "streamlit", "run", "dashboard.py", "--server.port", str(port)]
    command += ["--server.fileWatcherType", "none"]
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    return process, port


def _wait_until_healthy(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while not _healthy(f"http://127.0.0.1:{port}"):
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(
                f"streamlit never answered on port {port}; its output:\n{log.read_text(errors='replace')}"
            )
        time.sleep(0.2)


@pytest.fixture(scope="module")
def dashboards(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    """Two dashboards on free loopback ports over one empty store, started together: one with the
    repository's settings alone, one configured as the guide says for a site behind the proxy
    (``STREAMLIT_SERVER_ALLOWED_HOSTS`` naming the site)."""
    folder = tmp_path_factory.mktemp("deployment")
    url = f"sqlite:///{folder / 'monitor.db'}"
    open_store(url, timezone="UTC").kw["bind"].dispose()
    env = {**os.environ, "MONITOR_DATABASE_URL": url, "MONITOR_SEED_DEMO": "0"}
    env.pop("STREAMLIT_SERVER_ALLOWED_HOSTS", None)
    alone = _launch(env, folder / "alone.log")
    behind = _launch({**env, "STREAMLIT_SERVER_ALLOWED_HOSTS": SITE}, folder / "behind.log")
    try:
        _wait_until_healthy(*alone, folder / "alone.log")
        _wait_until_healthy(*behind, folder / "behind.log")
        yield alone[1], behind[1]
    finally:
        for process in (alone[0], behind[0]):  # both asked to stop first: they stop together
            if process.poll() is None:
                process.terminate()
        _stop(alone[0])
        _stop(behind[0])


def _nginx() -> str:
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
    if found is None:
        message = "nginx is not installed (`make nginx`, or `apt-get install -y nginx`)"
        if os.environ.get(REQUIRE_NGINX):
            pytest.fail(f"{message}, and {REQUIRE_NGINX} is set")
        pytest.skip(message)
    return found


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for the test site (openssl)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        + ["-days", "2", "-subj", f"/CN={SITE}", "-addext", f"subjectAltName=DNS:{SITE}"]
        + ["-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=TIMEOUT,
    )
    return cert, key


def _site_config(upstream: int, tls_port: int, plain_port: int, cert: Path, key: Path) -> str:
    """docs/nginx/monitor.conf with the test's name, ports, certificate and upstream; nothing else."""
    text = CONFIG.read_text()
    for shipped, here in (
        ("monitor.hospital.example", SITE),
        ("listen 443 ssl", f"listen 127.0.0.1:{tls_port} ssl"),
        ("listen 80", f"listen 127.0.0.1:{plain_port}"),
        ("/etc/ssl/monitor/fullchain.pem", str(cert)),
        ("/etc/ssl/monitor/privkey.pem", str(key)),
        ("server 127.0.0.1:8501;", f"server 127.0.0.1:{upstream};"),
    ):
        assert shipped in text, f"{CONFIG.name} no longer has {shipped!r}: update this test"
        text = text.replace(shipped, here)
    return text


@pytest.fixture(scope="module")
def proxy(dashboards: tuple[int, int], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    """The guide's nginx, in the foreground with its own prefix, logs and temporary folders (no root
    needed), in front of the dashboard configured for the site."""
    binary = _nginx()
    folder = tmp_path_factory.mktemp("nginx")
    cert, key = _certificate(folder)
    tls_port, plain_port = _free_loopback_port(), _free_loopback_port()
    (folder / "site.conf").write_text(_site_config(dashboards[1], tls_port, plain_port, cert, key))
    temporary = "".join(
        f"    {kind}_temp_path {folder / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (folder / "nginx.conf").write_text(
        # As root, nginx's workers would otherwise run as nobody, who cannot write the temporary folders.
        ("user root;\n" if os.geteuid() == 0 else "")
        + f"daemon off;\nworker_processes 1;\npid {folder / 'nginx.pid'};\n"
        + f"error_log {folder / 'error.log'};\n"
        + "events { worker_connections 64; }\n"
        + f"http {{\n    access_log off;\n{temporary}    include {folder / 'site.conf'};\n}}\n"
    )
    command = [binary, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-e", str(folder / "error.log")]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=TIMEOUT)
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not _listening(tls_port) or not _listening(plain_port):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"nginx did not start: {(folder / 'error.log').read_text(errors='replace')}")
            time.sleep(0.05)
        yield Proxy(tls_port, plain_port, cert)
    finally:
        _stop(process)


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def _tls(proxy: Proxy) -> ssl.SSLContext:
    """A client context that trusts the test's certificate and checks the site's name against it."""
    return ssl.create_default_context(cafile=str(proxy.certificate))


def _request(
    port: int, path: str, *, host: str, tls: ssl.SSLContext | None = None, sni: str = SITE
) -> http.client.HTTPResponse:
    """GET ``path`` on a loopback ``port`` with this Host header (over TLS naming ``sni`` when ``tls``)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    if tls is not None:
        sock = tls.wrap_socket(sock, server_hostname=sni)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response


def _refused(call: Callable[[], object]) -> str:
    """How a request was refused: the connection closed without an answer, or a refusing status."""
    try:
        status = call()
    except (http.client.RemoteDisconnected, ConnectionResetError, ssl.SSLError, InvalidHandshake) as error:
        if isinstance(error, InvalidStatus):
            status = error.response.status_code
        else:
            return type(error).__name__
    assert status in (403, 421), f"answered {status}"
    return str(status)


def _stream(
    port: int,
    *,
    host: str,
    cookies: str = "",
    protocols: tuple[str, ...] = ("streamlit",),
    proxy: Proxy | None = None,
) -> ClientConnection:
    """The dashboard's WebSocket (/_stcore/stream) as a browser on ``host`` opens it: its Origin, its
    cookies, Streamlit's tokens in the subprotocol list (``streamlit``, the XSRF token, a session id)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    scheme = "wss" if proxy is not None else "ws"
    origin = f"{'https' if proxy else 'http'}://{host}:{port}"
    headers = {"Origin": origin, **({"Cookie": cookies} if cookies else {})}
    return connect(
        f"{scheme}://{host}:{port}/_stcore/stream",
        sock=sock,
        ssl=_tls(proxy) if proxy is not None else None,
        server_hostname=SITE if proxy is not None else None,
        subprotocols=list(protocols),  # type: ignore[arg-type]
        additional_headers=headers,
        open_timeout=TIMEOUT,
    )


def _session_id(stream: ClientConnection) -> str:
    """Ask the app to run and return the session id its first message names."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    rerun = BackMsg()
    rerun.rerun_script.query_string = ""
    stream.send(rerun.SerializeToString())
    while True:
        message = ForwardMsg()
        message.ParseFromString(stream.recv(timeout=TIMEOUT))
        if message.WhichOneof("type") == "new_session":
            return message.new_session.initialize.session_id


def _cookies(response: http.client.HTTPResponse) -> dict[str, str]:
    """Each cookie the response sets, by name: its whole Set-Cookie line."""
    return {line.split("=", 1)[0]: line for line in response.headers.get_all("Set-Cookie") or []}


# --- The guide ---


def test_the_guide_shows_the_proxy_configuration_that_is_tested() -> None:
    guide = GUIDE.read_text()
    assert "```nginx\n" + CONFIG.read_text() + "```" in guide


# --- Streamlit alone, with the repository's settings ---


def test_streamlit_refuses_a_websocket_for_another_host_name(dashboards: tuple[int, int]) -> None:
    port = dashboards[0]
    assert _refused(lambda: _stream(port, host=FOREIGN)) == "403"  # DNS rebinding: refused
    with _stream(port, host="127.0.0.1") as stream:  # the loopback address the dashboard is opened on
        assert _session_id(stream)


def test_on_streamlit_alone_a_session_id_resumes_its_session_without_any_cookie(
    dashboards: tuple[int, int],
) -> None:
    """What does NOT hold without the proxy (see the module's docstring): the id alone resumes."""
    port = dashboards[0]
    health = _request(port, "/_stcore/health", host="127.0.0.1")
    xsrf = _cookies(health)["_streamlit_xsrf"].split(";")[0]
    with _stream(
        port, host="127.0.0.1", cookies=xsrf, protocols=("streamlit", xsrf.split("=", 1)[1])
    ) as first:
        session = _session_id(first)
    with _stream(port, host="127.0.0.1", protocols=("streamlit", "no-token", session)) as other:
        assert _session_id(other) == session


# --- Behind the guide's nginx ---


def test_the_proxy_refuses_any_other_host_name(proxy: Proxy) -> None:
    tls = _tls(proxy)
    # TLS for another name: no handshake at all.
    assert _refused(
        lambda: _request(proxy.tls_port, "/", host=FOREIGN, tls=tls, sni=FOREIGN).status
    ).startswith("SSL")
    # The site's name in TLS but another in Host: closed without an answer (444).
    assert (
        _refused(lambda: _request(proxy.tls_port, "/", host=FOREIGN, tls=tls).status) == "RemoteDisconnected"
    )
    assert _refused(lambda: _request(proxy.plain_port, "/", host=FOREIGN).status) == "RemoteDisconnected"
    # Plain HTTP for the site: sent to HTTPS.
    moved = _request(proxy.plain_port, "/", host=SITE)
    assert moved.status == 301 and moved.headers["Location"] == f"https://{SITE}/"


def test_the_proxy_refuses_a_websocket_for_another_host_name(proxy: Proxy) -> None:
    # Closed without an answer (444): no HTTP response to the handshake at all.
    assert _refused(lambda: _stream(proxy.tls_port, host=FOREIGN, proxy=proxy)) == "InvalidMessage"
    with _stream(proxy.tls_port, host=SITE, proxy=proxy) as stream:
        assert _session_id(stream)


def test_the_site_is_served_over_tls_with_headers_against_framing_and_downgrade(proxy: Proxy) -> None:
    page = _request(proxy.tls_port, "/", host=SITE, tls=_tls(proxy))
    assert page.status == 200 and b"<title>" in page.read()
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Content-Security-Policy"] == "frame-ancestors 'none'"
    assert page.headers["Strict-Transport-Security"].startswith("max-age=63072000")
    assert page.headers["X-Content-Type-Options"] == "nosniff"

    cookies = _cookies(_request(proxy.tls_port, "/_stcore/health", host=SITE, tls=_tls(proxy)))
    xsrf = [flag.strip().lower() for flag in cookies["_streamlit_xsrf"].split(";")[1:]]
    assert "secure" in xsrf and "samesite=strict" in xsrf
    client = [flag.strip().lower() for flag in cookies["monitor_client"].split(";")[1:]]
    assert {"secure", "httponly", "samesite=strict"} <= set(client)


def test_behind_the_proxy_a_session_id_resumes_only_in_the_browser_holding_its_cookie(proxy: Proxy) -> None:
    health = _request(proxy.tls_port, "/_stcore/health", host=SITE, tls=_tls(proxy))
    cookies = {name: line.split(";")[0] for name, line in _cookies(health).items()}
    jar = "; ".join(cookies.values())
    token = cookies["_streamlit_xsrf"].split("=", 1)[1]
    with _stream(
        proxy.tls_port, host=SITE, cookies=jar, protocols=("streamlit", token), proxy=proxy
    ) as first:
        session = _session_id(first)

    # Another client with the id (and even the XSRF cookie and token) but not the proxy's cookie.
    stolen = ("streamlit", token, session)
    with _stream(
        proxy.tls_port, host=SITE, cookies=cookies["_streamlit_xsrf"], protocols=stolen, proxy=proxy
    ) as other:
        assert _session_id(other) != session
    # The browser itself reconnects to its own session.
    with _stream(proxy.tls_port, host=SITE, cookies=jar, protocols=stolen, proxy=proxy) as again:
        assert _session_id(again) == session
