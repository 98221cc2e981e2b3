"""Runner overhead per iteration of a long scripted loop (`--iterations`, default 1,000; `--budget`,
default 32,000 tokens; compaction by summary).

Overhead is an iteration's wall time minus the time inside the model and the tools: what the
runner itself costs (context fitting, counting, trace and state writes, limits, progress).
Also printed: the largest prompt (in estimated tokens) against the budget, the share of each
prompt that repeats the previous prompt's prefix (between compactions), and peak memory.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import yaml
from common import StepOverhead, emit, median, workspace

from runner.engine.start import start
from runner.models.tokens import MESSAGE_OVERHEAD, estimate, message_text
from runner.spec.resolve import resolve


def option(name: str, default: int) -> int:
    return int(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default


ITERATIONS = option("--iterations", 1000)
BUDGET = option("--budget", 32000)


def project() -> Path:
    root = workspace("overhead")
    for i in range(20):
        (root / f"src_{i}.py").write_text(f"# module {i}\n" + "def handler(event):\n    return event  # pass\n" * 40)
    with open(root / "b.script.yaml", "w") as script:  # written as it goes: the bench's memory is not the run's
        script.writelines(yaml.safe_dump([{"say": f"step {n}", "tools": [{"read_file": {"path": f"src_{n % 20}.py"}}]}])
                          for n in range(ITERATIONS))
    (root / "b.loop.yaml").write_text(f"""
version: 1
name: bench
model: {{name: scripted, script: b.script.yaml}}
objective: Read everything.
tools: [read_file]
context: {{budget_tokens: {BUDGET}, keep_recent: 8, compaction: summarize, offload_over_tokens: 2000}}
verify: [{{name: never, file: {{path: never.txt}}}}]
stop: {{max_iterations: {ITERATIONS}}}
""")
    return root


def tokens(message: dict) -> int:
    return estimate(message_text(message)) + MESSAGE_OVERHEAD


def prefix_shares(prompts: list[list[dict]], compacted: set[int]) -> tuple[list[float], float]:
    """Between compactions: for each prompt, the share of its tokens in the prefix it shares with the
    previous prompt; and the fraction of prompts that begin with the whole previous prompt."""
    shares, whole = [], 0
    for i in range(1, len(prompts)):
        if i + 1 in compacted:  # the compaction happened before call i+1 (iterations count from 1)
            continue
        before, now, same = prompts[i - 1], prompts[i], 0
        while same < min(len(before), len(now)) and before[same] == now[same]:
            same += 1
        shares.append(sum(tokens(m) for m in now[:same]) / sum(tokens(m) for m in now))
        whole += same == len(before)
    return shares, whole / len(shares)


def main() -> None:
    root = project()
    loop = start(resolve(root / "b.loop.yaml"), root, root / "runs")
    before = current_rss_mb()
    overhead = StepOverhead()
    loop.model.complete = overhead.exclude(loop.model.complete)
    loop.toolbox.call = overhead.exclude(loop.toolbox.call)
    loop.step = overhead.step(loop.step)
    loop.run()
    # taken before the bench's own analysis below, which builds text for 1,000 prompts
    growth, peak = current_rss_mb() - before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    acts = [c["messages"] for c in loop.model.calls if c["purpose"] == "act"]
    compacted = {e["iteration"] for e in _events(loop.record.folder) if e["type"] == "compaction"}
    shares, whole = prefix_shares(acts, compacted)
    last, window = len(overhead.ms), overhead.window
    emit({"iterations": last, "overhead_ms_at_10": window(10), "overhead_ms_at_100": window(100),
          "overhead_ms_at_1000": window(min(1000, last)), "ratio_1000_to_10": window(min(1000, last)) / window(10),
          **({"overhead_ms_at_10000": window(10000), "ratio_10000_to_10": window(10000) / window(10)}
             if last >= 10000 else {}),
          "overhead_ms_median": median(overhead.ms),
          "max_prompt_tokens": max(sum(tokens(m) for m in p) for p in acts), "budget_tokens": BUDGET,
          "compactions": len(compacted), "prefix_share_median": median(shares),
          "prefix_share_min": min(shares), "pairs_at_or_over_90pct": sum(s >= 0.9 for s in shares) / len(shares),
          "prompts_starting_with_the_whole_previous_prompt": whole,
          "peak_rss_mb": peak,
          "rss_growth_over_the_run_mb": growth})


def current_rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20


def _events(folder: Path) -> list[dict]:
    from runner.record.trace import read_events

    return read_events(folder / "trace.jsonl")


if __name__ == "__main__":
    main()
