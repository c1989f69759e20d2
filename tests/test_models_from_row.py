"""Models built from driver rows (domain.shared.models.from_row) behave as ORM-loaded ones."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime

from domain.shared.models import from_row
from domain.shared.settings import PROJECT_ROOT
from domain.users.models import User

ROW = {"id": uuid.uuid4(), "tenant_id": uuid.uuid4(), "email": "a@example.test", "name": "A",
       "role": "admin", "manager_id": None, "created_at": datetime.now(UTC)}


def test_a_row_becomes_the_same_model_as_the_constructor_makes() -> None:
    made = from_row(User, ROW)
    assert made.model_dump() == User(**ROW).model_dump()
    assert (made.email, made.role, made.manager_id) == ("a@example.test", "admin", None)


def test_a_row_missing_a_column_is_built_by_the_constructor() -> None:
    partial = {k: v for k, v in ROW.items() if k != "created_at"}
    made = from_row(User, partial)
    assert made.created_at is not None  # the field's default, as User(**partial) gives


def test_from_row_works_in_a_process_that_never_used_the_orm() -> None:
    # Mappers are configured on first ORM use; a server's first request may be a row.
    code = ("import uuid, datetime\n"
            "from domain.shared.models import from_row\n"
            "from domain.users.models import User\n"
            "u = from_row(User, {'id': uuid.uuid4(), 'tenant_id': uuid.uuid4(), 'email': 'e',"
            " 'name': 'n', 'role': 'viewer', 'manager_id': None,"
            " 'created_at': datetime.datetime.now()})\n"
            "print(u.email, u.role)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["e", "viewer"]
