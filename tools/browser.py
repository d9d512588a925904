"""The Chromium that the console's browser tests drive through Playwright for Python.

Looked for in this order:
1. `CONSOLE_BROWSER`: the path of a Chromium or Chrome executable, when set;
2. the system's Chromium on PATH: `chromium` (Debian's package), `chromium-browser`,
   `google-chrome`, `google-chrome-stable`;
3. Playwright's own Chromium, if `python -m playwright install chromium` was run and it downloaded.

`python -m tools.browser` prints the browser found, or says what to install and exits with 1
(`make test` then installs Debian's `chromium` when it runs as root with apt-get, else stops).
"""
from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

SYSTEM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
HOW_TO_INSTALL = (
    "No Chromium for the console's browser tests. Install one: Debian/Ubuntu `sudo apt-get install chromium` "
    "(make test does this itself when run as root), or `python -m playwright install chromium` where Playwright's "
    "download works, or set CONSOLE_BROWSER to the path of a Chromium or Chrome executable."
)


@dataclass(frozen=True)
class Chromium:
    path: str
    source: str  # where it was found, in words

    def __str__(self) -> str:
        return f"{self.path} ({self.source})"


def find_chromium(environ: dict[str, str] | None = None) -> Chromium | None:
    environ = os.environ if environ is None else environ
    chosen = environ.get("CONSOLE_BROWSER", "").strip()
    if chosen:
        path = shutil.which(chosen) or chosen
        return Chromium(path, "CONSOLE_BROWSER") if _executable(path) else None
    for name in SYSTEM_NAMES:
        path = shutil.which(name)
        if path:
            return Chromium(path, f"system package, `{name}` on PATH")
    bundled = _playwright_chromium()
    return Chromium(bundled, "Playwright's own download") if bundled else None


def _executable(path: str) -> bool:
    return Path(path).is_file() and os.access(path, os.X_OK)


def _playwright_chromium() -> str | None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    with sync_playwright() as playwright:
        path = playwright.chromium.executable_path
    return path if path and _executable(path) else None


def main() -> int:
    found = find_chromium()
    if found is None:
        print(HOW_TO_INSTALL, file=sys.stderr)
        return 1
    print(f"Console browser tests use {found}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
