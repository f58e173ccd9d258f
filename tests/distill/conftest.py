"""Every convert-model run in these tests is strict about options: one that was given and never read by the
command is an error (convert.cli_options), not a warning."""
import os

os.environ.setdefault("SIGMAWATCH_STRICT_OPTIONS", "1")
