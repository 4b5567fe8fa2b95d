"""The reference Archivist API (testbed): the contract of docs/archivist-api.md served by
Starlette on uvicorn.

Starlette + uvicorn because they are already dependencies, are small, async end to end
(psycopg 3 async pool, redis.asyncio, httpx) and let one handler per route stay short.
"""
