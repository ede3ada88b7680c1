"""The reader-study web app: Visual Turing Tests, teaching cases on demand and questionnaires.

No torch import in this package: it serves pre-rendered files and talks to a case maker (a trained
run or a pool of synthetic images) through the small `CaseMaker` interface in `teaching_sources`.
"""
