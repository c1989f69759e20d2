"""The exported SDL is current, and every contract document validates against the schema."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import strawberry
from graphql import OperationDefinitionNode, parse, validate

from domain.shared.settings import PROJECT_ROOT
from schema.extensions import MaskUnexpectedErrors
from schema.schema import schema
from scripts.export_schema import SDL_PATH, current_sdl

# A copy of ../shared/contract kept in the repo so the suite runs on a machine without it;
# test_contract_copy_is_current keeps the copy honest wherever shared/ is present.
CONTRACT = PROJECT_ROOT / "tests" / "contract"
SHARED_CONTRACT = PROJECT_ROOT.parent / "shared" / "contract"

# Operations whose capability belongs to an issue not yet built. Strict xfail: when one starts
# validating, the test fails until it is removed from here.
PENDING: set[str] = set()
# Being built right now: not strict until they land (issues 3 and 4 have landed).
IN_PROGRESS: set[str] = set()


def _operations() -> list[tuple[str, str]]:
    found = []
    for path in sorted(CONTRACT.glob("*.graphql")):
        document = parse(path.read_text())
        for definition in document.definitions:
            if isinstance(definition, OperationDefinitionNode) and definition.name:
                source = path.read_text()[definition.loc.start:definition.loc.end]  # type: ignore[union-attr]
                found.append((definition.name.value, source))
    return found


OPERATIONS = _operations()


@pytest.mark.skipif(not SHARED_CONTRACT.is_dir(), reason="../shared/contract not present")
def test_contract_copy_is_current() -> None:
    sources = [*SHARED_CONTRACT.glob("*.graphql*"), SHARED_CONTRACT.parent / "workflow-config.md"]
    for source in sources:
        copy = CONTRACT / source.name
        assert copy.exists(), f"tests/contract/{source.name} is missing: copy it"
        assert copy.read_text() == source.read_text(), (
            f"tests/contract/{source.name} differs from ../shared/contract: copy it again")


def test_contract_documents_were_found() -> None:
    names = {name for name, _ in OPERATIONS}
    assert {"Viewer", "WorkflowList", "RunEvents"} <= names


@pytest.mark.parametrize(("name", "source"), [
    pytest.param(n, s, id=n,
                 marks=[pytest.mark.xfail(strict=n in PENDING, reason="not built yet")]
                 if n in PENDING | IN_PROGRESS else [])
    for n, s in OPERATIONS
])
def test_contract_operation_validates(name: str, source: str) -> None:
    errors = validate(schema._schema, parse(source))
    assert errors == [], f"{name}: {[e.message for e in errors]}"


def test_input_types_match_the_contract() -> None:
    """Every input/enum of inputs.graphqls that the schema defines has the contract's fields."""
    contract = parse((CONTRACT / "inputs.graphqls").read_text())
    ours = schema._schema.type_map
    for definition in contract.definitions:
        name = getattr(definition, "name", None)
        if name is None or name.value not in ours:
            continue
        ours_type = ours[name.value]
        if hasattr(definition, "fields") and definition.fields:
            for field in definition.fields:
                assert field.name.value in ours_type.fields, f"{name.value}.{field.name.value}"
        if hasattr(definition, "values") and definition.values:
            assert {v.name.value for v in definition.values} <= set(ours_type.values)


def test_exported_sdl_is_current() -> None:
    assert SDL_PATH.read_text() == current_sdl(), (
        "schema/schema.graphql is stale: run `python -m scripts.export_schema`"
    )


def test_sql_lives_only_in_repositories_and_migrations() -> None:
    pattern = re.compile(
        r"(?<![.\w])(select|insert|update|delete)\s*\(|text\(\s*[\"'](SELECT|INSERT|UPDATE|DELETE)",
        re.IGNORECASE)
    allowed = {"repository.py", "db.py"}
    offenders = []
    for folder in ("domain", "schema", "resolvers"):
        for path in Path(PROJECT_ROOT / folder).rglob("*.py"):
            if path.name in allowed or "repository" in path.name:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(line) and "sqlalchemy" not in line:
                    offenders.append(f"{path.relative_to(PROJECT_ROOT)}:{number}")
    assert offenders == []


def test_domain_never_imports_the_api_layers() -> None:
    offenders = []
    for path in Path(PROJECT_ROOT / "domain").rglob("*.py"):
        text = path.read_text()
        if re.search(r"^\s*(from|import)\s+(strawberry|starlette|schema|resolvers)\b", text,
                     re.MULTILINE):
            offenders.append(str(path.relative_to(PROJECT_ROOT)))
    assert offenders == []


@dataclass
class _FakeContext:
    request_id: str = "req-mask"
    principal: None = None


@strawberry.type
class _Boom:
    @strawberry.field
    def boom(self) -> str:
        raise RuntimeError("SELECT secret FROM tenants -- internal detail")


@pytest.mark.asyncio
async def test_unexpected_errors_are_masked_with_a_request_id() -> None:
    masked = strawberry.Schema(query=_Boom, extensions=[MaskUnexpectedErrors])
    result = await masked.execute("{ boom }", context_value=_FakeContext())
    assert result.errors is not None
    error = result.errors[0]
    assert error.message == "Unexpected error."
    assert error.extensions == {"code": "INTERNAL_SERVER_ERROR", "requestId": "req-mask"}
    assert "SELECT" not in str(error.formatted)
