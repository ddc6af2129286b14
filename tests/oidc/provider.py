"""A real OpenID Connect provider on 127.0.0.1 for tests: ``provider.mjs`` (npm ``oidc-provider`` 8) under Node.

The library is installed once into ``TRIPWIRE_OIDC_NODE_DIR`` (default ``~/.cache/tripwire/oidc-node``;
``.ci/run`` pre-installs it) with ``npm install``; node_modules never enters the repository.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "provider.mjs"
PACKAGE = "oidc-provider@8"


def node_dir() -> Path:
    return Path(os.environ.get("TRIPWIRE_OIDC_NODE_DIR", Path.home() / ".cache" / "tripwire" / "oidc-node"))


def ensure_installed(folder: Path | None = None, timeout: float = 300) -> Path:
    """``npm install oidc-provider@8`` into ``folder`` unless it is already there; returns the folder."""
    folder = folder or node_dir()
    if (folder / "node_modules" / "oidc-provider" / "lib" / "index.js").is_file():
        return folder
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise RuntimeError("node and npm are needed for the test OpenID Connect provider (tests/oidc)")
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([npm, "install", "--prefix", str(folder), "--no-audit", "--no-fund", "--silent", PACKAGE],
                   check=True, timeout=timeout, capture_output=True)
    return folder


@dataclass(frozen=True)
class OidcUser:
    email: str
    groups: Sequence[str] = ()


@dataclass(frozen=True)
class RunningProvider:
    issuer: str
    client_id: str
    client_secret: str

    @property
    def metadata_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"


@contextmanager
def oidc_provider(
    *, port: int, redirect_uri: str, users: Sequence[OidcUser], log_path: Path,
    client_id: str = "tripwire-dashboard", client_secret: str = "test-client-secret", timeout: float = 30,
) -> Iterator[RunningProvider]:
    """Run the provider until the block ends (SIGTERM, then kill)."""
    config = {
        "port": port, "module_dir": str(ensure_installed()),
        "client": {"client_id": client_id, "client_secret": client_secret, "redirect_uri": redirect_uri},
        "users": [{"email": u.email, "groups": list(u.groups)} for u in users],
    }
    log = log_path.open("w")
    proc = subprocess.Popen(["node", str(SCRIPT), json.dumps(config)], stdout=subprocess.PIPE, stderr=log, text=True)
    ready = threading.Event()
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.strip())
            if line.startswith("ready "):
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        if not ready.wait(timeout):
            raise RuntimeError(f"the OIDC provider did not start in {timeout}s: {lines} {log_path.read_text()}")
        yield RunningProvider(issuer=lines[-1].split(" ", 1)[1], client_id=client_id, client_secret=client_secret)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
