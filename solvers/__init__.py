"""Solving prunemip's ``MipModel`` with HiGHS (highspy)."""
