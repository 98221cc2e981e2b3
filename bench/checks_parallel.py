"""A check round of 8 checks that each take 1 s: its wall time (median of 3; serial would be 8 s)."""

from __future__ import annotations

import time

from common import emit, median, workspace

from runner.checks.verifier import Verifier
from runner.spec.resolve import resolve
from runner.tools.sandbox import Commands, policy_for

CHECKS = 8


def main() -> None:
    root = workspace("checks")
    checks = "".join(f"  - {{name: c{i}, run: 'sleep 1'}}\n" for i in range(CHECKS))
    (root / "c.loop.yaml").write_text(f"version: 1\nname: c\nmodel: m\nobjective: o\nverify:\n{checks}")
    resolved = resolve(root / "c.loop.yaml")
    policy = policy_for(resolved.spec, resolved.files, root, root / "runs")
    verifier = Verifier(resolved.spec, resolved.renderer(root), root, None, Commands(policy, policy.environment(["b"])))
    times = []
    for _ in range(3):
        began = time.perf_counter()
        results = verifier.run(verifier.due(final=True), 1, None)
        times.append(time.perf_counter() - began)
        assert all(r.passed for r in results)
    emit({"round_of_8_one_second_checks_s_median": median(times), "checks": CHECKS})


if __name__ == "__main__":
    main()
