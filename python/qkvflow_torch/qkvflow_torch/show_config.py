"""Prints the presets, the section defaults and the resolved configuration of each file as one JSON object:

    python3 -m qkvflow_torch.show_config [CONFIG_FILE ...]

(used by the tests that compare these tables with qkvflow's own).
"""

import json
import sys

from .config import dump

if __name__ == "__main__":
    print(json.dumps(dump(sys.argv[1:])))
