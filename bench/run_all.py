"""Every benchmark, each in its own process, printed as one table: `python bench/run_all.py`.

Add --quick to skip the peer comparison (it installs mini-swe-agent into bench/.peer-venv).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROWS = [
    ("validate_time.py", "loop validate, 3-level extends chain (process, median of 10)",
     "validate_3_level_chain_ms_median", "ms"),
    ("first_request.py", "loop run to the first model request, with litellm (median of 5)",
     "first_model_request_ms_median", "ms"),
    ("first_request.py", "one-turn litellm run, whole process (median of 5)", "whole_process_s_median", "s"),
    ("first_request.py", "one-turn litellm run, whole-process CPU (median of 5)", "whole_process_cpu_s_median", "s"),
    ("overhead.py", "runner overhead per iteration at 10", "overhead_ms_at_10", "ms"),
    ("overhead.py", "runner overhead per iteration at 100", "overhead_ms_at_100", "ms"),
    ("overhead.py", "runner overhead per iteration at 1,000", "overhead_ms_at_1000", "ms"),
    ("overhead.py", "runner overhead, median of 1,000 iterations", "overhead_ms_median", "ms"),
    ("overhead.py", "overhead at 1,000 / at 10", "ratio_1000_to_10", "x"),
    ("overhead.py", "max prompt tokens (budget 32,000)", "max_prompt_tokens", "tokens"),
    ("overhead.py", "prompt share repeating the previous prefix (median)", "prefix_share_median", ""),
    ("overhead.py", "prompts starting with the whole previous prompt",
     "prompts_starting_with_the_whole_previous_prompt", ""),
    ("overhead.py", "peak memory of a 1,000-iteration run", "peak_rss_mb", "MB"),
    ("runs_list.py", "`loop runs` over 10,000 runs, whole process (median of 5)", "loop_runs_ms_median", "ms"),
    ("reload_latency.py", "hot reload, save to spec_reloaded (median of 20)", "reload_ms_median", "ms"),
    ("checks_parallel.py", "round of 8 checks of 1 s each (median of 3)", "round_of_8_one_second_checks_s_median", "s"),
    ("sandbox_cost.py", "a `true` command, unconfined (median of 100)", "plain_ms_median", "ms"),
    ("sandbox_cost.py", "a `true` command in bubblewrap (median of 100)", "bwrap_ms_median", "ms"),
    ("sandbox_cost.py", "a `true` command under Landlock (median of 100)", "landlock_ms_median", "ms"),
    ("sandbox_cost.py", "quickstart run, whole process, no sandbox (median of 5)", "quickstart_none_s_median", "s"),
    ("sandbox_cost.py", "quickstart run, whole process, bubblewrap (median of 5)", "quickstart_bwrap_s_median", "s"),
    ("edit_worst.py", "edit_file's closest-match hint at its bounds, worst case (median of 5)",
     "closest_hint_lookalike_lines_s", "s"),
    ("edit_worst.py", "edit_file's loose matching at its bounds, worst case (median of 5)",
     "made_before_repeated_words_s", "s"),
    ("peer.py", "mini-swe-agent overhead per step, median of 1,000", "mini_swe_agent_overhead_ms_median", "ms"),
    ("peer.py", "loop overhead per step, median of 1,000 (same run)", "loop_overhead_ms_median", "ms"),
    ("peer.py", "ratio mini-swe-agent / loop", "ratio_peer_to_loop_median", "x"),
]


def main() -> None:
    results: dict[str, dict] = {}
    for script in dict.fromkeys(row[0] for row in ROWS):
        if script == "peer.py" and "--quick" in sys.argv:
            continue
        done = subprocess.run([sys.executable, str(HERE / script), "--json"], capture_output=True, text=True,
                              check=False)
        results[script] = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else {}
        if done.returncode:
            print(f"{script} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
    print(f"| {'measure':<64} | {'value':>14} |")
    print(f"|{'-' * 66}|{'-' * 16}|")
    for script, label, key, unit in ROWS:
        value = results.get(script, {}).get(key)
        number = f"{value:,.2f}" if isinstance(value, float) else f"{value:,}" if value is not None else ""
        shown = "-" if value is None else f"{number} {unit}".strip()
        print(f"| {label:<64} | {shown:>14} |")


if __name__ == "__main__":
    main()
