"""The demo in a real browser: Debian's headless Chromium, driven by Selenium.

Nothing is downloaded: the system's /usr/bin/chromium and /usr/bin/chromedriver are used
(.ci/run installs them). Without them the test skips, unless CI is set. A screenshot of each
step goes to tests/browser/artifacts/.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from coatcheck.demo import demo_config, make_app, make_demo_server
from tests.services import in_ci

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
SHORT_IDLE = 2.0  # seconds: the expiry step waits this long
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1500",
]

webdriver: Any = None


def _need_chromium() -> None:
    global webdriver
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    try:
        from selenium import webdriver as wd
    except ImportError:
        missing.append("selenium (the dev extra)")
    else:
        webdriver = wd
    if not missing:
        return
    message = f"browser test needs {', '.join(missing)} (apt-get install chromium chromium-driver)"
    if in_ci():
        pytest.fail(f"{message}, and CI is set")
    pytest.skip(message)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Three demos: two on one store (127.0.0.1), one with a short idle timeout on its own
    store, reached as localhost so its cookies do not mix with the others'."""
    shared = f"sqlite:///{tmp_path}/shared.db"
    started = []
    urls = {}
    for name, store, config, host in (
        ("main", shared, demo_config(), "127.0.0.1"),
        ("other", shared, demo_config(), "127.0.0.1"),
        ("short", f"sqlite:///{tmp_path}/short.db", demo_config(idle=SHORT_IDLE), "localhost"),
    ):
        server = make_demo_server("127.0.0.1", 0)
        label = f"127.0.0.1:{server.server_port}"
        server.set_app(make_app(store, config, server_label=label))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        urls[name] = f"http://{host}:{server.server_port}/"
    yield urls
    for server in started:
        server.shutdown()
        server.server_close()


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Any]]:
    _need_chromium()
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # never let Selenium Manager fetch anything
    ARTIFACTS.mkdir(exist_ok=True)
    drivers: list[Any] = []

    def start(name: str) -> Any:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in [*FLAGS, f"--user-data-dir={tmp_path / ('profile-' + name)}"]:
            options.add_argument(flag)
        driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        drivers.append(driver)
        return driver

    yield start
    for driver in drivers:
        driver.quit()


def text(driver: Any, css: str) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.CSS_SELECTOR, css).text)


def present(driver: Any, css: str) -> bool:
    from selenium.webdriver.common.by import By

    return bool(driver.find_elements(By.CSS_SELECTOR, css))


def click_and_load(driver: Any, css: str) -> None:
    """Click a button that submits a form, and wait for the next page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    # a mark on the old page's window: gone once the next page has loaded. (Waiting for the
    # old <html> to go stale flaked: Chromium may answer the staleness probe with "node does
    # not belong to the document", a WebDriverException that staleness_of does not expect.)
    driver.execute_script("window.__coatcheckOldPage = true")
    driver.find_element(By.CSS_SELECTOR, css).click()
    WebDriverWait(driver, 15).until(
        lambda d: d.execute_script(
            "return window.__coatcheckOldPage === undefined && document.readyState === 'complete'"
        )
    )


def fill(driver: Any, form: str, **fields: str) -> None:
    from selenium.webdriver.common.by import By

    for name, value in fields.items():
        field = driver.find_element(By.CSS_SELECTOR, f"{form} [name={name}]")
        if field.tag_name == "select":
            from selenium.webdriver.support.ui import Select

            Select(field).select_by_value(value)
        else:
            field.clear()
            field.send_keys(value)


def shot(driver: Any, name: str) -> None:
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def test_the_demo_in_chromium(servers: dict[str, str], browser: Callable[[str], Any]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    one = browser("one")
    one.get(servers["main"])
    shot(one, "01-first-page")
    cookie = one.get_cookie("session")
    # Secure is kept on http://127.0.0.1 (a potentially trustworthy origin) and HttpOnly
    # keeps the id away from scripts
    assert cookie and cookie["secure"] and cookie["httpOnly"]
    assert "session=" not in one.execute_script("return document.cookie")
    assert cookie["value"] not in one.page_source
    one.refresh()
    assert text(one, "#visits") == "2" and not present(one, "#id-changed")

    first_id = text(one, "#sid")
    fill(one, "#login-form", user="alice")
    click_and_load(one, "#login")
    shot(one, "02-logged-in")
    assert text(one, "#user") == "alice"
    assert present(one, "#id-changed") and text(one, "#sid") != first_id
    assert one.get_cookie("session")["value"] != cookie["value"]

    click_and_load(one, "#badhash")
    shot(one, "03-bad-hash")
    assert text(one, "#is_bad_hash") == "true" and text(one, "#user") == "alice"
    click_and_load(one, "#badhash")
    assert text(one, "#is_bad_hash") == "false"

    one.find_element(By.ID, "run-all").click()
    WebDriverWait(one, 30).until(
        lambda d: all(
            d.find_element(By.ID, f"burst-{m}").get_attribute("data-done") == "1"
            for m in ("exclusive", "release", "optimistic")
        )
    )
    one.execute_script("document.getElementById('burst').scrollIntoView()")
    shot(one, "04-burst")
    row = one.find_element(By.ID, "burst-exclusive")
    assert row.get_attribute("data-lost") == "0" and row.get_attribute("data-applied") == "8"
    for mode in ("release", "optimistic"):
        assert one.find_element(By.ID, f"burst-{mode}").get_attribute("data-lost") == "0"

    logged_in_id = text(one, "#sid")
    one.get(servers["other"])  # another server, same store: the same session
    shot(one, "05-other-server")
    assert text(one, "#server") != "" and servers["other"].split(":")[-1].strip("/") in text(
        one, "#server"
    )
    assert text(one, "#sid") == logged_in_id and text(one, "#user") == "alice"

    two = browser("two")
    two.get(servers["main"])
    fill(two, "#login-form", user="alice")
    click_and_load(two, "#login")
    one.get(servers["main"])
    assert len(one.find_elements(By.CSS_SELECTOR, "tr.user-session")) == 2
    shot(one, "06-two-sessions")
    click_and_load(one, "#logout-everywhere")
    assert text(one, "#user") == "alice"
    two.refresh()
    shot(two, "07-ended-elsewhere")
    assert text(two, "#user") == "—" and present(two, "#login")

    click_and_load(one, "#destroy")
    shot(one, "08-removed")
    assert text(one, "#user") == "—" and text(one, "#sid") != logged_in_id
    assert text(one, "#is_new") == "true"

    one.get(servers["short"])
    assert one.get_cookie("session")["secure"]  # kept on http://localhost as well
    fill(one, "#var-form", name="note", value="precious", action="set")
    click_and_load(one, "#var-form button")
    assert "precious" in text(one, "#data")
    time.sleep(SHORT_IDLE + 0.5)  # idle past the timeout
    one.refresh()
    shot(one, "09-expired")
    assert present(one, "#unexpire") and "expired" in text(one, "#expired-notice")
    click_and_load(one, "#unexpire")
    shot(one, "10-unexpired")
    assert "precious" in text(one, "#data") and text(one, "#is_expired") == "false"
    assert present(one, "#id-changed")
