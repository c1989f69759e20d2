"""The worker edge: procrastinate jobs and a periodic tick, calling domain code.

Beside schema/ (the GraphQL edge), this is the second way into the domain. Each job runs the
domain function of its task name in tenant transactions (domain/shared/db); the job library
stays here, never in domain/.
"""
