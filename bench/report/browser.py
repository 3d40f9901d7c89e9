"""A headless Chromium, driven from its command line: the self-test of a report page and screenshots.

No browser-automation package: ``chromium --headless --dump-dom FILE#selftest`` loads the page, whose own
script (``bench.report.page_parts``) checks itself on load (a click sorts the table, every image decoded, no
script error) and writes the result into ``<pre id="selftest">``; the dumped DOM carries it back. With
``--enable-logging=stderr`` Chromium also prints the page's console messages (``CONSOLE`` lines), which
the caller can require to be empty. ``chromium --screenshot`` takes the README's picture.

The browser: ``$MOE_CHROMIUM``, else the first of chromium, chromium-browser, google-chrome on PATH
(Debian's package ``chromium``; ``.ci/run`` installs it).
"""
from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
ENV = "MOE_CHROMIUM"
_SELFTEST = re.compile(r'<pre id="selftest">(.*?)</pre>', re.S)


def find_chromium() -> str | None:
    """The browser's executable, or None when none is installed."""
    if os.environ.get(ENV):
        return shutil.which(os.environ[ENV]) or (os.environ[ENV] if Path(os.environ[ENV]).is_file() else None)
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError(f"no Chromium found (tried ${ENV}, {', '.join(CANDIDATES)})")
    with tempfile.TemporaryDirectory(prefix="moe-chromium-") as profile:
        base = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-extensions", "--disable-background-networking", f"--user-data-dir={profile}"]
        return subprocess.run(base + args, capture_output=True, text=True, timeout=timeout)


def console_lines(stderr: str) -> list[str]:
    """The page's console messages among Chromium's log lines."""
    return [line for line in stderr.splitlines() if "CONSOLE" in line]


WINDOW = (1400, 1000)  # the window a report must fit: its width in pixels, and its height


def selftest(page: str | Path, timeout: float = 180, width: int = WINDOW[0]) -> dict[str, Any]:
    """Load ``page`` with ``#selftest`` in a window ``width`` pixels wide; returns {"result": the page's JSON
    (None if it never ran), "title", "console": console lines, "returncode", "stderr_tail"}."""
    url = Path(page).resolve().as_uri() + "#selftest"
    proc = _run(["--enable-logging=stderr", "--v=0", f"--window-size={width},{WINDOW[1]}", "--hide-scrollbars",
                 "--virtual-time-budget=15000", "--dump-dom", url], timeout)
    found = _SELFTEST.search(proc.stdout)
    title = re.search(r"<title>(.*?)</title>", proc.stdout, re.S)
    return {"result": json.loads(html.unescape(found.group(1))) if found else None,
            "title": html.unescape(title.group(1)) if title else None, "console": console_lines(proc.stderr),
            "returncode": proc.returncode, "stderr_tail": proc.stderr[-2000:]}


def screenshot(page: str | Path, png: str | Path, width: int = 1280, height: int = 1000, timeout: float = 180) -> Path:
    """A PNG of the top of ``page`` at width x height pixels."""
    png = Path(png).resolve()
    proc = _run([f"--screenshot={png}", f"--window-size={width},{height}", "--hide-scrollbars",
                 "--virtual-time-budget=5000", Path(page).resolve().as_uri()], timeout)
    if not png.is_file():
        raise RuntimeError(f"chromium wrote no screenshot (exit {proc.returncode}): {proc.stderr[-500:]}")
    return png
