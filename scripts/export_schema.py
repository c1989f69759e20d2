"""Write the schema's SDL to schema/schema.graphql (a test fails when it is stale)."""

from __future__ import annotations

from domain.shared.settings import PROJECT_ROOT

SDL_PATH = PROJECT_ROOT / "schema" / "schema.graphql"


def current_sdl() -> str:
    from schema.schema import schema

    return schema.as_str().rstrip() + "\n"


def main() -> None:
    SDL_PATH.write_text(current_sdl())
    print(f"wrote {SDL_PATH.relative_to(PROJECT_ROOT)}")


if __name__ == "__main__":
    main()
