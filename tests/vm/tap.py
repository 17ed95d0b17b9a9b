"""`ok - ...` / `not ok - ...` lines for the guest checkers (check-storage.py,
check-secure-boot.py): `check` records each result, `finish` prints the count and exits 1
when any failed; `one_finding` reads the one finding of a check from posture's report."""
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


def one_finding(report_path, check_id):
    """The finding `check_id` of the report at `report_path`; exits 1 unless there is
    exactly one."""
    with open(report_path) as f:
        report = json.load(f)
    findings = [x for x in report["findings"] if x["id"] == check_id]
    if len(findings) != 1:
        print(f"not ok - exactly one {check_id} finding")
        sys.exit(1)
    return findings[0]
