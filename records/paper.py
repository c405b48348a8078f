"""The paper's tables a sweep can be shown beside: the names a spec's ``reference:`` takes,
each laid out by ``analysis.tables.LAYOUTS`` with the values in ``analysis/reference/``."""

PAPER_TABLES = ("table1", "table2", "table3")
