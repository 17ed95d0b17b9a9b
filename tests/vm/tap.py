"""`ok - ...` / `not ok - ...` lines for the guest checkers (check-storage.py,
check-secure-boot.py): `check` records each result, `finish` prints the count and exits 1
when any failed."""
import json
import sys

_failed = 0


def check(what, cond, detail=None):
    global _failed
    if cond:
        print(f"ok - {what}")
    else:
        _failed += 1
        print(f"not ok - {what}")
        if detail is not None:
            print("    " + json.dumps(detail, indent=2).replace("\n", "\n    "))


def finish():
    print(f"{_failed} failed")
    sys.exit(1 if _failed else 0)
