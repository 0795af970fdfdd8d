"""Write one `## ` section of a Markdown file (docs/BENCHMARKS.md), leaving the others as they are."""


def write_section(path, heading, md):
    """Replace the section starting with `heading` in `path` by `md` (appended at the end)."""
    try:
        old = open(path).read()
    except FileNotFoundError:
        old = "# Benchmarks\n\n"
    at = old.find(heading)
    if at >= 0:
        end = old.find("\n## ", at + len(heading))
        old = old[:at] + (old[end + 1:] if end >= 0 else "")
    with open(path, "w") as f:
        f.write(old.rstrip("\n") + "\n\n" + md.rstrip("\n") + "\n")
