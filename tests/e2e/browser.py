"""A real deployment and a real browser for the dashboard tests.

:class:`Deployment` runs ``sundial dev`` (API, scheduler and worker processes) on a free
port, with API keys, over a ``redis-server`` of the test's own as lease, notice channel and
broker. :func:`start_chromium` drives Debian's headless Chromium through its chromedriver:
the paths are given, so Selenium Manager never downloads anything.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
from selenium import webdriver
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from tests.faults.processes import RedisServer
from tests.services import free_port, service_missing, wait_for

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
)
# The viewer's zone differs from UTC and from the schedules' zones, as it would for a user.
BROWSER_TZ = "Europe/Paris"
WRITE_KEY = "e2e-write-key-5f1c2a"
READ_KEY = "e2e-read-key-9b7d4e"
# The names the change history records for the two keys.
WRITER, READER = "alice", "auditor"
T = TypeVar("T")


class Deployment:
    """``sundial dev`` with API keys, on a private Redis; stopped with Ctrl-C like a user."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.redis = RedisServer(folder, "redis")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        # The scheduler's Prometheus endpoint, on a port of the test's own.
        self.metrics_port = free_port()
        self.log_path = folder / "dev.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start everything and wait until the API is ready and a leader fires."""
        self.redis.start()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SUNDIAL_")} | {
            "PYTHONUNBUFFERED": "1",
            "SUNDIAL_API_KEYS": f"{WRITER}={WRITE_KEY},{READER}={READ_KEY}:read",
            "SUNDIAL_REDIS_URL": self.redis.url,
            "SUNDIAL_LEASE_TTL_SECONDS": "5",
            "SUNDIAL_SCHEDULER_METRICS_PORT": str(self.metrics_port),
            "SUNDIAL_SCHEDULER_METRICS_ADDR": "127.0.0.1",
        }
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sundial", "dev", "--port", str(self.port)],
                cwd=self.folder,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(self._ready, 90, "sundial dev to be ready with a leader", interval=0.2)
        assert self.proc.poll() is None, self.log_tail()

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"sundial dev exited:\n{self.log_tail()}")
        try:
            status = self.api("GET", "/v1/scheduler")
        except httpx.TransportError:
            return False
        return status.status_code == 200 and status.json()["leader"] is not None

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A REST call with the write key."""
        headers = {"X-API-Key": WRITE_KEY, **kwargs.pop("headers", {})}
        return httpx.request(method, self.base + path, headers=headers, timeout=10, **kwargs)

    def log_tail(self) -> str:
        """The end of the deployment's log, for failure messages."""
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        """Ctrl-C, as a user stops it; then the private Redis."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.redis.kill()


def require_chromium() -> None:
    """Skip (fail under SUNDIAL_TEST_REQUIRE_SERVICES=1) without Debian's Chromium."""
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not binary.is_file():
            service_missing(f"{binary} is missing: apt-get install chromium chromium-driver")


def start_chromium(profile: Path) -> WebDriver:
    """A headless Chromium with a fresh profile in ``profile``."""
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument("--window-size=1400,1000")
    service = Service(
        executable_path=str(CHROMEDRIVER),
        env={**os.environ, "TZ": BROWSER_TZ},
        log_output=str(profile.with_suffix(".chromedriver.log")),
    )
    return webdriver.Chrome(service=service, options=options)


def until(
    driver: WebDriver, condition: Callable[[WebDriver], T], what: str, timeout: float = 15
) -> T:
    """Wait on a page condition with a deadline; the message says what never happened."""
    try:
        # A page being replaced (a form posted, a panel refreshed) is waited through.
        wait = WebDriverWait(
            driver,
            timeout,
            poll_frequency=0.1,
            ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
        )
        result: T = wait.until(condition)
    except TimeoutException as exc:
        raise AssertionError(
            f"timed out after {timeout}s waiting for {what} on {driver.current_url}"
        ) from exc
    return result


def click(
    driver: WebDriver, find: Callable[[WebDriver], WebElement], what: str, timeout: float = 15
) -> None:
    """Find an element and click it, finding it again while a refresh replaces it.

    htmx swaps refreshed panels (the run history every 2 s): an element found a moment
    before the click may be gone by the click, which then raises
    StaleElementReferenceException; :func:`until` ignores that and the next poll finds
    the element the refresh put in its place.
    """

    def clicked(d: WebDriver) -> bool:
        find(d).click()
        return True

    until(driver, clicked, f"{what} to be clickable", timeout)
