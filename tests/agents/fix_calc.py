"""A stand-in agent CLI for the tests: it fixes one bug of the quickstart's calc.py per run, the one
its prompt points at, and prints its usage as JSON. The prompt comes as the spec says: on stdin
(no arguments), as a file (`--file PATH`) or as the argument itself (`--prompt TEXT`)."""

import json
import sys
from pathlib import Path

if "--file" in sys.argv:
    prompt = Path(sys.argv[sys.argv.index("--file") + 1]).read_text()
elif "--prompt" in sys.argv:
    prompt = sys.argv[sys.argv.index("--prompt") + 1]
else:
    prompt = sys.stdin.read()
with Path("prompts.log").open("a") as log:
    log.write(prompt + "\n=====\n")
calc = Path("calc.py")
text = calc.read_text()
if "test_multiply" in prompt:
    calc.write_text(text.replace("def multiply(a, b):\n    return a + b", "def multiply(a, b):\n    return a * b"))
else:
    calc.write_text(text.replace("return a - b", "return a + b", 1))
print("edited calc.py")
print(json.dumps({"total_cost_usd": 0.25, "usage": {"input_tokens": 1000, "output_tokens": 200}}))
