"""Customers of a tenant: renewal, ARR, health, CSM and account team."""
