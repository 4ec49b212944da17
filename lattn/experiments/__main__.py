"""``python -m lattn.experiments <subcommand>``: one subcommand per submodule of ``lattn.experiments``."""

import lattn.experiments
from lattn._cli import run_subcommands

if __name__ == "__main__":
    run_subcommands(lattn.experiments)
