"""point3-pipeline: keeps a point3 merchant's books straight.

The library (client, sync, warehouse, reports, sandbox, CLI) imports no Dagster;
`dagster_project` is a thin layer of definitions over it.
"""

__version__ = "0.1.0"
