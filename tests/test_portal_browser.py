"""The reports portal in a real browser: Debian's headless Chromium, driven by Selenium through
Debian's chromedriver (nothing downloaded at run time), against `point3 serve` in its own
process on a deployment built here: a sandbox's two merchants synced and last month's tax
workbook rendered twice (the month's first 20 days, then all of it), through the CLI, as the
pipeline does. A person of the first merchant logs in through the form, finds last month's
latest tax workbook on the list page, downloads it and gets the file on disk, byte for byte.
Screenshots of the list page and the version page go to POINT3_SCREENSHOTS (default: the
test's tmp_path) for a person to look at."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from point3_pipeline import cli, config
from point3_pipeline.merchants import load_merchants_file
from point3_pipeline.sandbox import SandboxConfig, SandboxServer
from point3_pipeline.sync import kst_now

pytestmark = pytest.mark.slow

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
BOUND = 60  # seconds: an upper bound on a wait that ends by an event, never a race
USER, PASSWORD = "accountant", "a long demo password 7"
POINT3 = Path(sys.executable).with_name("point3")


def last_month(today: dt.date) -> dt.date:
    return (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)


def run_cli(*argv: str) -> None:
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:
        code = exc.code
    assert code == 0, argv


def wait_until(what: str, done, *, process: subprocess.Popen | None = None):
    """`done()`'s first true value, polled until BOUND seconds have passed (then a failure
    naming `what`), or until `process` has exited."""
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            pytest.fail(f"{what}: the process exited with code {process.returncode}")
        found = done()
        if found:
            return found
        time.sleep(0.05)
    pytest.fail(f"{what}: not within {BOUND} s")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """Two merchants' warehouses, published copies and last month's tax workbook (v1 with its
    first 20 days, v2 with all of them), as `point3 sync` and `point3 report` leave them."""
    tmp = tmp_path_factory.mktemp("portal")
    today = kst_now().date()
    month = last_month(today)
    with SandboxServer(SandboxConfig(seed=5, days=(today - month).days + 1, per_day=4, future_days=0, speed=0),
                       merchants=2) as sandbox, pytest.MonkeyPatch.context() as mp:
        for name in config.ENV_VARS:
            mp.delenv(name, raising=False)
        merchants_file = sandbox.write_merchants(tmp / "firm")
        mp.setenv("POINT3_MERCHANTS", str(merchants_file))
        period = f"{month:%Y-%m}"
        run_cli("sync", "--all", "--since", str(month), "--until", str(month + dt.timedelta(days=19)))
        run_cli("report", "tax", "--period", period, "--all")
        run_cli("sync", "--all", "--since", str(month))
        run_cli("report", "tax", "--period", period, "--all")
    merchants = load_merchants_file(merchants_file).merchants
    return {"merchants_file": merchants_file, "merchants": merchants, "period": period, "tmp": tmp}


def portal_env(deployment) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POINT3_")}
    env["POINT3_MERCHANTS"] = str(deployment["merchants_file"])
    env["POINT3_PORTAL_DB"] = str(deployment["tmp"] / "portal.db")
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def portal(deployment):
    """`point3 serve` on a free loopback port in loopback demo mode, with one person who may
    see the first merchant alone; its base URL once it answers."""
    env = portal_env(deployment)
    password_file = deployment["tmp"] / "password"
    password_file.write_text(PASSWORD + "\n")
    password_file.chmod(0o600)
    first = deployment["merchants"][0].id
    subprocess.run([POINT3, "users", "add", USER, "--merchant", first, "--password-file", password_file],
                   env=env, check=True, capture_output=True, timeout=BOUND)
    port = free_port()
    log = (deployment["tmp"] / "serve.log").open("wb")
    process = subprocess.Popen([POINT3, "serve", "--host", "127.0.0.1", "--port", str(port), "--insecure-loopback-demo"],
                               env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until("the portal answering /login", lambda: answers(f"{url}/login"), process=process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=BOUND)
        log.close()


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def downloads(tmp_path) -> Path:
    folder = tmp_path / "downloads"
    folder.mkdir()
    return folder


@pytest.fixture
def browser(tmp_path, downloads):
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail(f"the browser test needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}): "
                    "run scripts/setup-browser.sh")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    # Without the background-networking flags Chromium calls home, which a closed network refuses.
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,1400", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {
        "download.default_directory": str(downloads), "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("POINT3_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def finished_download(folder: Path) -> Path | None:
    """The one downloaded file once Chromium has finished it. Chromium writes a download to a
    hidden temp file (.org.chromium.Chromium.*), renames it <name>.crdownload once it knows the
    name, and renames that <name> when the last byte is written."""
    files = list(folder.iterdir())
    if len(files) == 1 and not files[0].name.startswith(".") and not files[0].name.endswith(".crdownload"):
        return files[0]
    return None


def test_an_accountant_logs_in_finds_last_months_tax_workbook_and_downloads_it(deployment, portal, browser, downloads, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    mine, other = deployment["merchants"]
    period = deployment["period"]
    latest = mine.reports_dir / period / f"point3-tax-{period}-v2.xlsx"
    assert latest.exists() and (mine.reports_dir / period / f"point3-tax-{period}-v1.xlsx").exists()
    shots = screenshots(tmp_path)

    browser.get(f"{portal}/")  # no session: the login form
    WebDriverWait(browser, BOUND).until(lambda d: d.find_elements(By.NAME, "username"))
    browser.find_element(By.NAME, "username").send_keys(USER)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.NAME, "password").submit()
    WebDriverWait(browser, BOUND).until(lambda d: d.current_url == f"{portal}/")
    assert mine.name in browser.page_source and other.name not in browser.page_source

    browser.find_element(By.CSS_SELECTOR, f"a[href$='/m/{mine.id}/']").click()
    WebDriverWait(browser, BOUND).until(lambda d: d.current_url == f"{portal}/m/{mine.id}/")
    browser.save_screenshot(str(shots / "portal-list.png"))
    row = browser.find_element(By.ID, f"p-{period}-tax")  # last month's tax workbook, its latest version
    assert "v2" in row.text
    row.find_element(By.CSS_SELECTOR, f"a[href$='/m/{mine.id}/files/{period}/{latest.name}']").click()
    downloaded = wait_until("the workbook's download", lambda: finished_download(downloads))
    assert downloaded.name.endswith(latest.name)  # the name the portal gave it (Content-Disposition)
    assert downloaded.read_bytes() == latest.read_bytes()

    row.find_element(By.CSS_SELECTOR, f"a[href$='/m/{mine.id}/versions/tax/{period}']").click()
    WebDriverWait(browser, BOUND).until(lambda d: d.current_url.endswith(f"/versions/tax/{period}"))
    for version in ("v1", "v2"):
        assert browser.find_elements(By.CSS_SELECTOR, f"a[href$='/files/{period}/point3-tax-{period}-{version}.xlsx']")
    browser.save_screenshot(str(shots / "portal-versions.png"))
