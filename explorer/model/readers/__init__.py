"""One module per file format; each returns a ModelFile (explorer.model.model_file)."""
