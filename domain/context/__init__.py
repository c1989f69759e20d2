"""The context a customer's templates render against: one builder for previews and runs."""
