"""The real Dagster UI in headless Chromium: materialize one partition by clicking, then watch the run succeed.

Uses Debian's ``chromium`` (``make test`` installs it); Playwright never downloads a browser here.
"""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
from deltalake import DeltaTable
from playwright.sync_api import Page, expect, sync_playwright

from medallion_assets.sample_data import generate

from .services import DagsterServices, wait_until

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DAY = "2024-01-03"
RUN = """
query($id: ID!) {
  runOrError(runId: $id) { __typename ... on Run { status tags { key value } } ... on Error { message } }
}
"""
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}


def launch_from_ui(page: Page, url: str) -> str:
    """Materialize… → all partitions → type the day → Launch 1 run; return the id of the launched run."""
    page.goto(f"{url}/assets/bronze/orders")
    page.get_by_role("button", name="Materialize…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Launch runs to materialize bronze / orders")
    dialog.get_by_role("button", name="Show all partitions").click()  # the default range is the last 90 days
    partitions = dialog.locator("input[type=text]")
    partitions.fill(DAY)
    partitions.press("Enter")
    with page.expect_response(
        lambda r: "/graphql" in r.url and '"operationName":"LaunchPipelineExecution"' in (r.request.post_data or "")
    ) as response:
        dialog.get_by_role("button", name="Launch 1 run", exact=True).click()  # shown once the day is applied
    launched = response.value.json()["data"]["launchPipelineExecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["id"]


def open_run(page: Page, run_id: str) -> None:
    """Runs (side bar) → the run's row; the "Launched run … View" toast is gone after about 5 s."""
    page.locator("a[href='/runs']").click()
    page.get_by_role("link", name=run_id[:8]).click()  # the short id (after a status icon)
    expect(page).to_have_url(re.compile(f"/runs/{run_id}$"))


def finished_run(dagster: DagsterServices, run_id: str) -> dict | None:
    dagster.check_alive()
    run = dagster.graphql(RUN, {"id": run_id})["runOrError"]
    assert run["__typename"] == "Run", run
    return run if run["status"] in FINISHED else None


def test_materialize_one_partition_from_the_ui(tmp_path: Path) -> None:
    landing, lakehouse, home = tmp_path / "landing", tmp_path / "lakehouse", tmp_path / "home"
    generate(landing, days=3, orders_per_day=150, seed=31)
    with (
        DagsterServices(landing, lakehouse, home=home, env={"MEDALLION_AUTOMATION": "off"}) as dagster,
        sync_playwright() as playwright,
    ):
        dagster.graphql("mutation { setNuxSeen }")  # what the community pop-up's Skip sends: it stays away
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(30_000)
        try:
            run_id = launch_from_ui(page, dagster.url)
            open_run(page, run_id)
            try:
                run = wait_until(lambda: finished_run(dagster, run_id), timeout=150, interval=1, what="the run")
            except TimeoutError as exc:
                raise AssertionError(f"{exc}\n--- daemon log ---\n{dagster.log_tail('daemon')}") from exc
            assert run["status"] == "SUCCESS", run
            expect(page.get_by_text("Success", exact=True)).to_be_visible()
        except BaseException:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
            raise
        finally:
            browser.close()

    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert tags["dagster/partition"] == DAY and tags["dagster/from_ui"] == "true", tags
    bronze = DeltaTable(str(lakehouse / "bronze/orders")).to_pandas()
    assert sorted(bronze["order_date"].astype(str).unique()) == [DAY]
    log = DeltaTable(str(lakehouse / "monitoring/pipeline_runs")).to_pandas()
    assert log[["run_id", "asset", "partition", "passed", "run_mode"]].values.tolist() == [
        [run_id, "bronze/orders", DAY, True, "manual"]
    ]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(["bronze", "orders"]))
        assert event is not None and event.run_id == run_id and event.asset_materialization.partition == DAY
        assert instance.get_latest_materialization_event(dg.AssetKey(["silver", "orders"])) is None
