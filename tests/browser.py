"""Headless Chromium for the page tests (Debian's chromium and chromium-driver, driven
by Selenium): one fresh profile per browser, no network of its own, and the browser's
console and network events kept so a test can assert that none happened."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from conftest import require

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            return f"{path} is not installed (Debian chromium, chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (the [test] extra)"
    return None


class Browser:
    """One headless Chromium. `open(path)` loads a file:// page; `requests()` and
    `console_errors()` drain what the browser logged since the last call."""

    def __init__(self, width: int = 1400, height: int = 1000):
        require(missing())
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.profile = tempfile.mkdtemp(prefix="tcptrace-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in ("--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--no-first-run",
                    "--disable-dev-shm-usage", f"--user-data-dir={self.profile}",
                    f"--window-size={width},{height}"):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        self.page = ""

    def open(self, path: Path, fragment: str = "") -> None:
        self.page = path.resolve().as_uri()
        self.driver.get(self.page + (f"#{fragment}" if fragment else ""))

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def requests(self) -> list[str]:
        """URLs of every request the open page made, itself included (CDP Network
        events whose document is the page; the browser's own start page has others)."""
        urls = []
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            params = message.get("params", {})
            if message["method"] == "Network.requestWillBeSent" \
                    and params.get("documentURL") == self.page:
                urls.append(params["request"]["url"])
        return urls

    def console_errors(self) -> list[str]:
        return [e["message"] for e in self.driver.get_log("browser")
                if e["level"] in ("SEVERE", "WARNING")]

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)
