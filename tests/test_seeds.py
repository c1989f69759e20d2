"""Core seeds: the files say what the seed documents describe; seeding is idempotent; the
versioning trigger holds for writes that bypass the domain; `stepwise validate` reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from domain.seeding import service as seeding
from domain.shared.settings import PROJECT_ROOT, Settings

SEEDS = PROJECT_ROOT / "seeds" / "workflows"


def load(key: str) -> dict[str, Any]:
    return json.loads((SEEDS / f"{key}.json").read_text())


def notifications(config: dict[str, Any]) -> list[dict[str, Any]]:
    return [n for step in config["steps"] for n in step.get("notifications", [])]


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": settings.database_url,
           "STEPWISE_JWT_SECRET": settings.jwt_secret}
    return subprocess.run([sys.executable, "-m", "scripts.cli", *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def _plain(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class TestSeedFilesFollowTheSeedDocuments:
    def test_triggers_by_days_until_renewal(self) -> None:
        assert load("critical")["trigger"]["daysUntilRenewal"] == {"min": 7, "max": 14}
        assert load("emergency")["trigger"]["daysUntilRenewal"] == {"min": 0, "max": 6}
        assert load("overdue")["trigger"]["daysUntilRenewal"]["max"] < 0

    def test_step_and_notification_counts(self) -> None:
        counts = {k: (len(load(k)["steps"]), len(notifications(load(k))))
                  for k in ("critical", "emergency", "overdue")}
        assert counts == {"critical": (4, 2), "emergency": (4, 5), "overdue": (3, 8)}

    def test_critical_notifications_are_action_triggered(self) -> None:
        assert all(n.get("actionTriggered") for n in notifications(load("critical")))

    def test_emergency_needs_the_managers_approval_before_proceeding(self) -> None:
        steps = load("emergency")["steps"]
        approvals = [i for i, s in enumerate(steps) if s["type"] == "approval"]
        assert approvals
        assert steps[approvals[0]]["approver"] == "{{csm.manager}}"
        # Nothing but the status check comes before the approval.
        assert approvals[0] == 1

    def test_overdue_escalates_on_days_7_8_15_22_30(self) -> None:
        scheduled = [n for n in notifications(load("overdue")) if "schedule" in n]
        days = [n["schedule"]["daysOverdue"] for n in scheduled]
        assert days == [7, 8, 15, 22, 30]
        recipients = [" ".join(n["recipients"]) for n in scheduled]
        assert "csm.manager" in recipients[0]
        assert "vpCustomerSuccess" in recipients[1]
        assert scheduled[2]["type"] == "slack"
        assert "war room" in scheduled[2]["title"].lower()
        assert "company.ceo" in recipients[3]
        assert "company.ceo" in recipients[4]

    def test_core_saved_actions(self) -> None:
        actions = json.loads((PROJECT_ROOT / "seeds" / "saved_actions.json").read_text())
        ids = {a["actionId"] for a in actions["savedActions"]}
        assert {"snooze-1-day", "snooze-7-days", "skip-step", "escalate-to-manager"} <= ids


class TestValidateCommand:
    def test_the_seed_files_are_valid(self) -> None:
        assert seeding.validate_files(None) == []

    def test_a_broken_file_exits_1_with_one_line_per_problem(self, tmp_path: Path,
                                                              settings: Settings) -> None:
        config = load("critical")
        config["steps"][1]["id"] = config["steps"][0]["id"]
        config["steps"][2]["execution"]["llmPrompt"] = "{{#if customer.name}}unfinished"
        config["ui"] = {"artifacts": []}
        broken = tmp_path / "broken.json"
        broken.write_text(json.dumps(config))
        result = _cli(settings, "validate", str(broken), str(SEEDS / "overdue.json"))
        assert result.returncode == 1
        lines = result.stdout.strip().splitlines()
        assert all(line.startswith(str(broken)) for line in lines), lines
        joined = "\n".join(lines)
        for code in ("DUPLICATE_STEP_ID", "TEMPLATE_TRUNCATED", "UI_ARTIFACT"):
            assert code in joined
        assert len(lines) == len(set(lines)) >= 4

    def test_invalid_json_is_a_problem_not_a_crash(self, tmp_path: Path) -> None:
        bad = tmp_path / "bad.json"
        bad.write_text("{not json")
        lines = seeding.validate_files([bad])
        assert len(lines) == 1
        assert "INVALID_JSON" in lines[0]


class TestSeedCommand:
    def test_seed_twice_changes_nothing_the_second_time(self, settings: Settings) -> None:
        first = _cli(settings, "seed")
        assert first.returncode == 0, first.stderr
        second = _cli(settings, "seed")
        assert second.returncode == 0, second.stderr
        assert "3 workflows (3 unchanged)" in second.stdout
        assert "4 saved actions (4 unchanged)" in second.stdout

    @pytest.mark.asyncio
    async def test_repeated_seeds_add_no_version(self, settings: Settings) -> None:
        query = ("SELECT w.key, w.latest_version, count(v.*) AS versions FROM workflows w "
                 "JOIN workflow_versions v ON v.workflow_id = w.id WHERE w.tenant_id IS NULL "
                 "GROUP BY w.key, w.latest_version ORDER BY w.key")
        await seeding.seed_core(settings.database_url)
        connection = await asyncpg.connect(_plain(settings.database_url))
        try:
            before = [tuple(r) for r in await connection.fetch(query)]
            await seeding.seed_core(settings.database_url)
            await seeding.seed_core(settings.database_url)
            after = [tuple(r) for r in await connection.fetch(query)]
        finally:
            await connection.close()
        assert [key for key, _, _ in after] == ["critical", "emergency", "overdue"]
        assert after == before
        assert all(latest == count for _, latest, count in after)


class TestSeedIsAllOrNothing:
    @pytest.mark.asyncio
    async def test_one_bad_file_means_nothing_is_written(
            self, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        from domain.seeding import core
        from domain.shared.errors import ValidationFailed

        await seeding.seed_core(settings.database_url)
        renamed = load("critical")
        renamed["name"] = "Critical Renewal (edited)"
        (tmp_path / "critical.json").write_text(json.dumps(renamed))
        broken = load("overdue")
        broken["steps"][0]["chatBranches"][0]["next"] = "nowhere"
        (tmp_path / "overdue.json").write_text(json.dumps(broken))
        monkeypatch.setattr(core, "WORKFLOWS_DIR", tmp_path)
        with pytest.raises(ValidationFailed) as raised:
            await seeding.seed_core(settings.database_url)
        dangling = [p for p in raised.value.problems if p.code == "UNKNOWN_STEP"]
        assert len(dangling) == 1
        assert dangling[0].path is not None
        assert dangling[0].path.endswith("overdue.json $.steps[0].chatBranches[0].next")
        connection = await asyncpg.connect(_plain(settings.database_url))
        try:
            name = await connection.fetchval(
                "SELECT name FROM workflows WHERE tenant_id IS NULL AND key = 'critical'")
        finally:
            await connection.close()
        assert name == "Critical Renewal"

    @pytest.mark.asyncio
    async def test_a_changed_seed_file_makes_exactly_one_new_version(
            self, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        from domain.seeding import core

        await seeding.seed_core(settings.database_url)
        for key in ("critical", "emergency", "overdue"):
            (tmp_path / f"{key}.json").write_text(json.dumps(load(key)))
        edited = load("emergency")
        edited["steps"][3]["name"] = "Outcome and lessons"
        (tmp_path / "emergency.json").write_text(json.dumps(edited))
        monkeypatch.setattr(core, "WORKFLOWS_DIR", tmp_path)
        report = await seeding.seed_core(settings.database_url)
        assert "3 workflows (2 unchanged, 1 updated)" in report
        again = await seeding.seed_core(settings.database_url)
        assert "3 workflows (3 unchanged)" in again
        connection = await asyncpg.connect(_plain(settings.database_url))
        try:
            versions = await connection.fetch(
                "SELECT v.number, v.change_description FROM workflow_versions v "
                "JOIN workflows w ON w.id = v.workflow_id "
                "WHERE w.tenant_id IS NULL AND w.key = 'emergency' ORDER BY v.number")
        finally:
            await connection.close()
        assert [r["number"] for r in versions] == [1, 2]
        assert versions[1]["change_description"].startswith("Seeded from")
        monkeypatch.undo()
        await seeding.seed_core(settings.database_url)  # back to the real files (version 3)
