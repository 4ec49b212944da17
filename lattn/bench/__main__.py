"""``python -m lattn.bench <subcommand>``: one subcommand per submodule of ``lattn.bench``."""

import lattn.bench
from lattn._cli import run_subcommands

if __name__ == "__main__":
    run_subcommands(lattn.bench)
