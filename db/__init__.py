"""The asyncpg pool, numbered SQL migrations and one module of queries per table family."""
