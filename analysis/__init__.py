"""Analysis: the results store -> the paper's tables, figures and reports."""
