"""Named SQL queries over replay datasets, shipped as package data (one .sql file per question)."""
