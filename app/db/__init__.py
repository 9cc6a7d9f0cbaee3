"""The only package that speaks SQL.

Functions take a connection; the caller owns the transaction.
"""
