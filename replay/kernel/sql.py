"""The kernel facts as DuckDB macros, generated from the Python rules so that the SQL
layer and the engine apply one definition (queries/_macros.sql builds on these)."""

from __future__ import annotations

from replay.kernel import gfp, migratetypes, tracepoints


def kernel_macros() -> str:
    """Every kernel-fact macro, as one SQL script."""
    release = """
CREATE OR REPLACE MACRO kernel_before(release, major, minor) AS
    TRY_CAST(regexp_extract(release, '^(\\d+)\\.(\\d+)', 1) AS INTEGER) * 1000
        + TRY_CAST(regexp_extract(release, '^(\\d+)\\.(\\d+)', 2) AS INTEGER)
    < major * 1000 + minor;
"""
    return "\n".join((release, migratetypes.sql_macros(), gfp.sql_macros(),
                      tracepoints.sql_macros()))
