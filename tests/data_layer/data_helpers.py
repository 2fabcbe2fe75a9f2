"""Helpers of the data-layer tests: editing a CSV file of a study row by row."""


def replace_line(path, lineno, text):
    """Replace spreadsheet row `lineno` (1 = header) of a CSV file."""
    lines = path.read_text().splitlines(keepends=True)
    lines[lineno - 1] = text + "\n"
    path.write_text("".join(lines))


def append(path, text):
    with open(path, "a") as f:
        f.write(text + "\n")
