"""The demo's verdicts depend on a node count, not on the clock."""

from __future__ import annotations

from dataclasses import replace

from prunemip.study.demo import DemoConfig, run_demo


def test_the_node_limit_stops_highs_whatever_the_time_left():
    """With no node to spend, every attack the MIP would have decided by search stops at the
    limit, although ten minutes are left: the node count, not the clock, draws the line."""
    config = DemoConfig(hidden=(16, 16), epochs=3, finetune_epochs=1, images=2, radius=0.06, time_limit=600.0)
    free, stopped = (
        [
            attack.status
            for report in run_demo(replace(config, node_limit=limit), log=lambda _: None)
            for attack in report.attacks
        ]
        for limit in (None, 0)
    )
    assert "adversarial" in free and "timeout" not in free
    assert stopped == ["timeout" if status == "adversarial" else status for status in free]
