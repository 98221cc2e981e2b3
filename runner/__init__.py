"""loop: a declarative runner for long-running LLM agents.

The package is in wings, one per part of the architecture. Dependencies point one way, left
to right: a module imports from its own wing and the wings to its left, never to its right.

    spec → models → record → tools → checks → engine → cli        (errors.py: everyone)

    spec/     the format and what turns a file into a validated spec: the pydantic models,
              YAML with positions, extends, located errors, Jinja templates, prompts, scripts
    models/   what answers a prompt: the Turn/ToolCall/Model types, litellm, the scripted model,
              token counting
    record/   the run record: trace, runs, snapshot, artifacts, provenance, masking
    tools/    what the agent may call: the toolbox, file tools, shell and processes
    checks/   what decides that the work is done: the verifier and one module per check kind
    engine/   the loop itself: context, limits, stopping, sub-loops, hot reload, start and resume
    cli/      the `loop` commands, the live display and the HTML report

`runner.api` is the Python API (engine/api.py); like `python -m runner`, it stands above the wings.

tests/test_architecture.py walks the imports and fails on one that points right or a circle.
"""

__version__ = "0.1.0"
