"""Named SQL queries over replay datasets, shipped as package data (one .sql file per question).

Files starting with `_` define the internal views and macros every query may use
(replay/database.py); the others are named queries (replay/queries.py).
"""
