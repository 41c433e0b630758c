"""The README's table of methods is the one the registries generate."""

from pathlib import Path

from noisyflow.methods.table import BEGIN, END, methods_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_methods_table_is_generated_from_the_registries():
    text = README.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    assert text[start:end] == methods_table(), "run `python -m noisyflow.methods.table`"
