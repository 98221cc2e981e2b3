"""A service that reads its settings from settings.json; `python3 app.py --check` validates them."""
import json
import sys


def load(path="settings.json"):
    with open(path, encoding="utf-8") as handle:
        settings = json.load(handle)
    problems = []
    if not isinstance(settings.get("port"), int) or not 1 <= settings["port"] <= 65535:
        problems.append("port must be an integer from 1 to 65535")
    if not isinstance(settings.get("debug"), bool):
        problems.append("debug must be true or false")
    if not str(settings.get("database", "")).startswith("sqlite:///"):
        problems.append("database must be a sqlite:/// URL")
    return settings, problems


if __name__ == "__main__" and sys.argv[1:] == ["--check"]:
    settings, problems = load()
    print("\n".join(problems) or "OK")
    sys.exit(1 if problems else 0)
