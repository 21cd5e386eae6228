"""The runs behind the book, apart from the library: chapter 7's summary table (report), the
distillation ablation, the ANN follow-ups, the GPU distillation and kernel checks, and the tables
the README prints. Each module runs as a script (``python experiments/<name>.py --help``); the
chapters import the few functions they show from here (the repository root on ``sys.path``)."""
