"""The Why dock: attribution maps of the current input (why the model scores a class)."""
