"""Start and stop the Azurite storage emulator (npm package) on loopback, for tests and `make run`.

Data goes to a git-ignored folder under `.azurite/`; telemetry is off.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AZURITE_BIN = ROOT / "node_modules" / ".bin" / "azurite"
ACCOUNT = "devstoreaccount1"
# Azurite's published development key: not a secret, the same in every emulator.
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Azurite:
    location: Path
    blob_port: int
    queue_port: int
    table_port: int
    process: subprocess.Popen | None = None

    @property
    def connection_string(self) -> str:
        host = "http://127.0.0.1"
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={host}:{self.blob_port}/{ACCOUNT};"
            f"QueueEndpoint={host}:{self.queue_port}/{ACCOUNT};"
            f"TableEndpoint={host}:{self.table_port}/{ACCOUNT};"
        )

    def start(self, timeout: float = 30.0) -> "Azurite":
        if not AZURITE_BIN.exists():
            raise RuntimeError(f"Azurite is not installed at {AZURITE_BIN}: run `npm ci` (make does it)")
        self.location.mkdir(parents=True, exist_ok=True)
        log = open(self.location / "azurite.log", "ab")
        self.process = subprocess.Popen(
            [
                str(AZURITE_BIN),
                "--silent",
                "--disableTelemetry",
                "--skipApiVersionCheck",
                "--location", str(self.location),
                "--blobHost", "127.0.0.1", "--blobPort", str(self.blob_port),
                "--queueHost", "127.0.0.1", "--queuePort", str(self.queue_port),
                "--tableHost", "127.0.0.1", "--tablePort", str(self.table_port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        for port in (self.blob_port, self.queue_port, self.table_port):
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"Azurite exited with {self.process.returncode}; see {self.location}/azurite.log")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise RuntimeError(f"Azurite did not listen on port {port} within {timeout:.0f} s")
                    time.sleep(0.1)
        return self

    def stop(self, *, remove_data: bool = False) -> None:
        """Stop the emulator; with remove_data, delete its folder too (for throw-away instances)."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if remove_data:
            shutil.rmtree(self.location, ignore_errors=True)


def start_azurite(name: str, *, fresh: bool = True) -> Azurite:
    """Start Azurite on free loopback ports with its data in `.azurite/<name>` (a name of its own
    per concurrent user: a fresh start wipes the folder)."""
    location = ROOT / ".azurite" / name
    if fresh and location.exists():
        shutil.rmtree(location)
    return Azurite(location, free_port(), free_port(), free_port()).start()


if __name__ == "__main__":  # `python -m tools.azurite`: run it in the foreground for manual work
    emulator = start_azurite("manual", fresh=False)
    print(emulator.connection_string, flush=True)
    try:
        emulator.process.wait()
    except KeyboardInterrupt:
        emulator.stop()
