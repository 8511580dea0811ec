"""`torchrun`, usable on Debian bookworm: `python3 -m qkvflow_torch.run [torchrun options] -m qkvflow_torch.train …`.

torch 1.13's launcher parses --redirects / --tee (default "0") by iterating over an IntFlag, which Python 3.11 no
longer does for the zero member, so `torchrun` there fails before starting any process ("'NoneType' object has no
attribute 'get'"). This entry point repairs that parser when it is broken and then runs torch.distributed.run
unchanged; with a torch whose parser works it is exactly `torchrun`.
"""

from __future__ import annotations

import re
import sys


def _repair_std_parser() -> None:
    from torch.distributed.elastic.multiprocessing import api

    try:
        broken = api.Std.from_str("0") is None
    except Exception:  # noqa: BLE001 - any failure of the original parser means it needs the replacement
        broken = True
    if not broken:
        return

    def from_str(cls, vm: str):
        if re.match(api._VALUE_REGEX, vm):
            return cls(int(vm))
        if re.match(api._MAPPING_REGEX, vm):
            return {int(i): cls(int(v)) for i, v in (m.split(":") for m in vm.split(","))}
        raise ValueError(f"{vm} does not match: <{api._VALUE_REGEX}> or <{api._MAPPING_REGEX}>")

    api.Std.from_str = classmethod(from_str)


def main() -> None:
    _repair_std_parser()
    from torch.distributed.run import main as torchrun_main

    torchrun_main()


if __name__ == "__main__":
    sys.exit(main())
