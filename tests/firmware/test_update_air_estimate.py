"""The estimate `modules update` prints (and the panel shows) against the bench's model of one
node's air update (tests/bench/bench_update_air.py: the node's real receiver under micropython,
the edge's real answers and chunks on readings' ACKs, both duty cycles in simulated time), here
without loss: the estimate is a least time, so never above the simulated one, and close to it."""

from __future__ import annotations

import json

import pytest

from edge.fuota import air, package
from tests.bench import bench_update_air as bench
from tests.firmware import updatekit


@pytest.fixture(scope="module")
def delta(tmp_path_factory):
    work = tmp_path_factory.mktemp("estimate")
    bundles = updatekit.build_bundles(work / "bundles")
    v1, v2 = (
        package.Manifest.from_dict(json.loads((bundles[v] / "manifest.json").read_text()))
        for v in ("v1", "v2")
    )
    contents = {p: (bundles["v2"] / p).read_bytes() for p in v2.files}
    return work, bundles, package.pack(package.plan(v2, v1), contents)


@pytest.mark.parametrize("sf", [7, 12])
def test_the_estimate_is_a_least_time_close_to_the_bench_model(delta, sf, monkeypatch):
    work, bundles, pkg = delta
    monkeypatch.setattr(bench, "LOSS", 0.0)
    simulated = bench._fragment(work / f"sf{sf}", bundles, pkg, sf, seed=0)
    _, max_payload = bench.RATES[sf]
    est = air.estimate(len(pkg), sf=sf, max_payload=max_payload, duty=bench.DUTY, interval_s=bench.INTERVAL_S)
    assert est["chunks"] == simulated["chunks"]  # no loss: every chunk sent once, answered or on an ACK
    assert est["requests"] + est["chunks_on_acks"] == est["chunks"]
    assert 0.85 * simulated["seconds"] <= est["seconds"] <= simulated["seconds"]
    if sf == 12:
        # the readings' ACKs carry most of it: the node's requests alone would take twice as long
        assert est["chunks_on_acks"] > est["requests"]


def test_with_the_shipped_energy_pace_a_whole_bundle_is_paced_and_the_estimate_still_holds(
    delta, monkeypatch
):
    """A whole bundle at SF7 needs more requests than the shipped allowance ([updates]
    energy_mah_day) lets through in a day's first quarter: the node's own pace holds requests back
    in the bench's model, and the estimate counts it (a least time, close), and the node's charge."""
    from edge.fuota import energy, updates

    work, bundles, _ = delta
    v1, v2 = (
        package.Manifest.from_dict(json.loads((bundles[v] / "manifest.json").read_text()))
        for v in ("v1", "v2")
    )
    full = package.pack(
        package.plan(v2, v1, full=True), {p: (bundles["v2"] / p).read_bytes() for p in v2.files}
    )
    monkeypatch.setattr(bench, "LOSS", 0.0)
    simulated = bench._fragment(work / "full7", bundles, full, 7, seed=0)
    assert simulated["pace"]["held"] > 0  # the pace bound, on the node
    est = updates.air_estimate("unix", len(full), 5, bench.INTERVAL_S, energy_mah_day=bench.ENERGY_MAH_DAY)
    unpaced = air.estimate(len(full), sf=7, max_payload=222, duty=bench.DUTY, interval_s=bench.INTERVAL_S)
    assert est is not None and est["pace"] == {
        "gap_s": simulated["pace"]["gap_s"],
        "burst": simulated["pace"]["burst"],
    }
    assert est["seconds"] > 2 * unpaced["seconds"]
    assert 0.85 * simulated["seconds"] <= est["seconds"] <= simulated["seconds"]
    assert est["energy_mah"] == pytest.approx(simulated["energy_mah"], rel=0.15)
    # and the pace kept what it promised: no more requests than a burst and its refill since
    pace = energy.Pace(**est["pace"])
    assert simulated["requests"] <= pace.requests_by(simulated["seconds"])
