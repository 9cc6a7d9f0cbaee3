"""`make bench`: the whole pipeline measured in one run, against baselines taken in the same run.

`python -m bench --help` lists the options; docs/performance.md explains each figure.
"""
