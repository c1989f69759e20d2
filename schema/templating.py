"""Template rendering and notification previews for a customer (nothing is sent)."""

from __future__ import annotations

from datetime import datetime

import strawberry

from resolvers import templating as resolve
from schema.context import Info
from schema.errors import UserError


def _errors(problems: list) -> list[UserError]:  # type: ignore[type-arg]
    return [UserError(code=p.code, message=p.message, path=p.path) for p in problems]


@strawberry.type(description="A rendered template, or the errors why it cannot render.")
class RenderResult:
    output: str | None
    errors: list[UserError]


@strawberry.type
class Query:
    @strawberry.field(description="Render a Handlebars template against the customer's "
                                  "context. html: escape values for an HTML channel (email). "
                                  "asOf pins the clock (default: now).")
    async def render_template(self, info: Info, template: str, customer_id: strawberry.ID,
                              html: bool | None = False, as_of: datetime | None = None
                              ) -> RenderResult:
        rendered = await resolve.render_template(info, template, customer_id, html=bool(html),
                                                 as_of=as_of)
        return RenderResult(output=rendered.output, errors=_errors(rendered.problems))
