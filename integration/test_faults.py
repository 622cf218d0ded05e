"""The harness's own faults, on real containers: a partition is what the scenario asked for.

A scenario that runs on other rules than it asked for fails far from the cause (a node cut from
its own side looks deaf). `DockerCluster.partition` and `heal` therefore read every node's
iptables chain back and apply it again where it differs; this checks that they do.
"""
from __future__ import annotations

import pytest

from integration._docker import no_docker_skip_message

if (_why := no_docker_skip_message()) is not None:  # at collection: one loud line, then skip
    pytest.skip(_why, allow_module_level=True)

from integration.cluster import PART_CHAIN, DockerCluster  # noqa: E402


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_partition_rules_are_read_back_and_applied_again_where_they_went_wrong(node_image):
    logged: list[str] = []
    with DockerCluster(node_image, {"dissemination": "push"}, log_fn=logged.append) as cluster:
        cluster.start(3)
        apply_rules = cluster._sh
        spoiled: list[str] = []

        def spoil_n2_once(node: str, script: str) -> None:
            if node == "n2" and not spoiled:   # its first application only flushes the chain
                spoiled.append(node)
                return apply_rules(node, cluster._chain_script(PART_CHAIN))
            return apply_rules(node, script)

        cluster._sh = spoil_n2_once   # type: ignore[method-assign]
        cluster.partition([["n1"], ["n2", "n3"]])
        ips = {n: cluster.ip(n) for n in ("n1", "n2", "n3")}
        assert spoiled == ["n2"]
        assert any(line.startswith("n2: partition rules read back as set()") for line in logged), logged
        assert cluster._dropped_ips("n1") == {ips["n2"], ips["n3"]}
        assert cluster._dropped_ips("n2") == {ips["n1"]}
        assert cluster._dropped_ips("n3") == {ips["n1"]}

        cluster.heal()
        assert all(cluster._dropped_ips(n) == set() for n in ("n1", "n2", "n3"))
