"""Headless Chromium for the slow book tests: screenshot a built page, read its rendered DOM;
and the third-party requests a built page would make (the offline-site check)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def find_chromium() -> str | None:
    """The headless-capable Chromium executable, if one is installed."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _chromium_command(chromium: str | None, profile_dir: str, *args: str) -> list[str]:
    exe = chromium or find_chromium()
    if exe is None:
        raise RuntimeError("no chromium executable found (Debian: apt-get install chromium)")
    return [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}", *args]


def rendered_dom(html: str | Path, wait_ms: int = 8000, chromium: str | None = None) -> str:
    """The page's DOM after its scripts ran (``--dump-dom``): shows whether MathJax typeset."""

    with tempfile.TemporaryDirectory(prefix="moralkit-chromium-") as profile_dir:
        cmd = _chromium_command(
            chromium,
            profile_dir,
            f"--virtual-time-budget={wait_ms}",
            "--dump-dom",
            Path(html).resolve().as_uri(),
        )
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(
            f"chromium --dump-dom failed ({result.returncode}): {result.stderr[-2000:]}"
        )
    return result.stdout


def screenshot_page(
    html: str | Path,
    png: str | Path,
    width: int = 1280,
    height: int = 2400,
    wait_ms: int = 8000,
    chromium: str | None = None,
) -> Path:
    """Screenshot a built page with headless Chromium (the flags a container needs).

    ``wait_ms`` of virtual time lets MathJax typeset before the shot.
    """

    exe = chromium or find_chromium()
    if exe is None:
        raise RuntimeError("no chromium executable found (Debian: apt-get install chromium)")
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="moralkit-chromium-") as profile_dir:
        cmd = [
            exe,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile_dir}",
            f"--window-size={width},{height}",
            f"--virtual-time-budget={wait_ms}",
            f"--screenshot={png}",
            Path(html).resolve().as_uri(),
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if result.returncode != 0 or not png.exists():
        raise RuntimeError(
            f"chromium screenshot failed ({result.returncode}): {result.stderr[-2000:]}"
        )
    return png


class _Requests(HTMLParser):
    """The URLs a page makes the browser fetch: scripts, stylesheets and the like, images."""

    FETCHED = {"script": "src", "img": "src", "iframe": "src", "link": "href", "source": "src"}

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        url = values.get(self.FETCHED.get(tag, ""))
        if tag == "link" and values.get("rel") in ("canonical", "alternate", "next", "prev"):
            return  # navigation, not a request
        if url:
            self.urls.append(url)


def third_party_requests(html_dir: Path) -> dict[str, list[str]]:
    """Per page, every http(s):// or protocol-relative script, stylesheet or image it loads."""
    found = {}
    for page in sorted(html_dir.rglob("*.html")):
        parser = _Requests()
        parser.feed(page.read_text(encoding="utf-8"))
        remote = [u for u in parser.urls if re.match(r"^(https?:)?//", u.strip(), re.I)]
        if remote:
            found[str(page.relative_to(html_dir))] = remote
    return found
