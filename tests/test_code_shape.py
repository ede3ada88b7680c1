"""The code stays readable in the ways DESIGN.md asks: no function over 80 lines (orchestrators are
split into named steps), so that a reader sees a function's whole flow on one screen."""

import ast
from pathlib import Path

import pathosynth

SOURCE = Path(pathosynth.__file__).resolve().parent
MOST_LINES = 80


def test_no_function_is_over_80_lines():
    long = []
    for path in sorted(SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MOST_LINES:
                    long.append(f"{path.relative_to(SOURCE)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, f"functions over {MOST_LINES} lines: {long}"
