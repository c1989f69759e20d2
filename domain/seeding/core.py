"""The core seed: workflows and saved actions from seeds/, validated, upserted in one go."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domain.saved_actions import service as saved_actions
from domain.shared.db import owner_transaction
from domain.shared.errors import Problem, ValidationFailed
from domain.shared.settings import PROJECT_ROOT
from domain.workflows import service as workflows
from domain.workflows.transfer import FORMAT
from domain.workflows.validation import validate

SEEDS_DIR = PROJECT_ROOT / "seeds"
WORKFLOWS_DIR = SEEDS_DIR / "workflows"
ACTIONS_FILE = SEEDS_DIR / "saved_actions.json"
CORE_TAGS = ["core", "renewal"]


@dataclass(frozen=True)
class SeedFile:
    path: Path
    config: Any


def _label(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def _read_json(path: Path) -> tuple[Any, list[Problem]]:
    try:
        return json.loads(path.read_text()), []
    except FileNotFoundError:
        return None, [Problem("FILE_NOT_FOUND", "no such file", _label(path))]
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return None, [Problem("INVALID_JSON", f"not valid JSON: {exc}", _label(path))]
    except RecursionError:
        return None, [Problem("TOO_DEEP", "not valid JSON: nested too deeply", _label(path))]


def _config_of(document: Any) -> Any:
    """A seed file is a bare config or an exported document (its `config`)."""
    if isinstance(document, dict) and document.get("format") == FORMAT:
        return document.get("config")
    return document


def core_actions() -> tuple[list[dict[str, Any]], list[Problem]]:
    document, problems = _read_json(ACTIONS_FILE)
    if problems:
        return [], problems
    entries = document.get("savedActions") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        return [], [Problem("INVALID_TYPE", "expected {\"savedActions\": [...]}",
                            _label(ACTIONS_FILE))]
    for i, entry in enumerate(entries):
        problems += [Problem(p.code, p.message, f"{_label(ACTIONS_FILE)} {p.path}")
                     for p in saved_actions.check_core(
                         entry if isinstance(entry, dict) else {}, path=f"$.savedActions[{i}]")]
    return entries, problems


def check_files(files: list[Path] | None) -> tuple[list[SeedFile], list[Problem]]:
    """Read and validate workflow files against the core saved actions; every problem."""
    actions, problems = core_actions()
    known = {a["actionId"] for a in actions if isinstance(a, dict) and "actionId" in a}
    paths = files if files else sorted(WORKFLOWS_DIR.glob("*.json"))
    loaded = []
    for path in paths:
        document, read_problems = _read_json(path)
        problems += read_problems
        if read_problems:
            continue
        config = _config_of(document)
        problems += [Problem(p.code, p.message, f"{_label(path)} {p.path}")
                     for p in validate(config, known_actions=known)]
        loaded.append(SeedFile(path, config))
    if not files:
        problems += _escalations_resolve(actions, {f.config.get("id") for f in loaded
                                                   if isinstance(f.config, dict)})
    return loaded, problems


def _escalations_resolve(actions: list[Any], keys: set[Any]) -> list[Problem]:
    """Core escalations start core workflows, so their targets are among the seed files."""
    return [Problem("UNKNOWN_WORKFLOW", f"no seed workflow {a['config']['workflowKey']!r}",
                    f"{_label(ACTIONS_FILE)} $.savedActions[{i}].config.workflowKey")
            for i, a in enumerate(actions)
            if isinstance(a, dict) and a.get("type") == "escalation"
            and isinstance(a.get("config"), dict)
            and a["config"].get("workflowKey") not in keys]


def problem_lines(problems: list[Problem]) -> list[str]:
    return [f"{p.path}: {p.code}: {p.message}" for p in problems]


async def seed(owner_url: str) -> str:
    """All-or-nothing upsert as the owner; unchanged rows are left alone (no new versions)."""
    files, problems = check_files(None)
    actions, _ = core_actions()
    if problems:
        raise ValidationFailed(problems)
    keys = [f.config["id"] for f in files]
    if len(set(keys)) != len(keys):
        raise ValidationFailed([Problem("DUPLICATE_KEY", "two seed files share a workflow id",
                                        _label(WORKFLOWS_DIR))])
    counts: dict[str, dict[str, int]] = {"workflows": {}, "saved actions": {}}
    async with owner_transaction(owner_url) as session:
        for entry in actions:
            outcome = await saved_actions.upsert_core(session, entry)
            counts["saved actions"][outcome] = counts["saved actions"].get(outcome, 0) + 1
        for seed_file in files:
            outcome = await workflows.upsert_core(session, config=seed_file.config,
                                                  tags=CORE_TAGS, source=_label(seed_file.path))
            counts["workflows"][outcome] = counts["workflows"].get(outcome, 0) + 1
    parts = []
    for noun, outcomes in counts.items():
        detail = ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items()))
        parts.append(f"{sum(outcomes.values())} {noun} ({detail})")
    return "core seed: " + "; ".join(parts)
