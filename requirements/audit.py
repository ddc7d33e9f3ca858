"""``make lint``'s dependency audit: pip-audit over the lock, with an allow-list that carries reasons.

Outcomes, decided so that lint is never red for a reason outside the tree:

- a known vulnerability in a locked version that ``audit-allow.txt`` does not accept: exit 1;
- none: one line, exit 0;
- the vulnerability service cannot be reached (PyPI's JSON API answers 404 or the network is
  closed; OSV likewise): one line that says the lock was NOT audited, exit 0 -- or exit 1 with
  ``ISOSWITCH_AUDIT_REQUIRED=1`` (set it where the service is reachable and a skip must not pass).

The service is PyPI's (pip-audit's default), then OSV if PyPI audits nothing;
``ISOSWITCH_AUDIT_SERVICE=osv|pypi`` picks one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOCK = HERE / "dev.txt"  # the runtime set and every extra: a superset of runtime.txt
ALLOW = HERE / "audit-allow.txt"
TIMEOUT = 300  # seconds for one pip-audit run


def allowed() -> dict[str, str]:
    """The accepted ids and their reasons; exits on a line without a reason."""
    ids: dict[str, str] = {}
    for n, line in enumerate(ALLOW.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        vid, _, reason = line.partition(" ")
        if not reason.strip():
            sys.exit(f"{ALLOW.name}:{n}: {vid} has no reason")
        ids[vid] = reason.strip()
    return ids


def run(service: str) -> dict | None:
    """pip-audit's JSON report, or None when it could not talk to ``service``."""
    cmd = [sys.executable, "-m", "pip_audit", "--disable-pip", "--require-hashes", "-r", str(LOCK)]
    cmd += ["--format", "json", "--progress-spinner", "off", "--vulnerability-service", service]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return None
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        return None  # a traceback (connection refused, name not resolved), not a report
    deps = report.get("dependencies", [])
    if deps and all("skip_reason" in d for d in deps):
        return None  # every package "not found": the service did not answer for any of them
    return report


def main() -> int:
    ignore = allowed()
    services = [os.environ["ISOSWITCH_AUDIT_SERVICE"]] if os.environ.get("ISOSWITCH_AUDIT_SERVICE") else ["pypi", "osv"]
    for service in services:
        report = run(service)
        if report is not None:
            break
    else:
        print(
            f"pip-audit: NOT AUDITED -- no vulnerability service answered ({', '.join(services)});"
            f" {LOCK.relative_to(HERE.parent)} was not checked"
        )
        return 1 if os.environ.get("ISOSWITCH_AUDIT_REQUIRED") == "1" else 0
    deps = report.get("dependencies", [])
    found, matched = [], set()
    for d in deps:
        for v in d.get("vulns", []):
            ids = {v["id"], *v.get("aliases", [])}
            if ids & ignore.keys():
                matched |= ids & ignore.keys()
            else:
                found.append((d["name"], d["version"], v["id"], v.get("fix_versions", [])))
    skipped = sorted(d["name"] for d in deps if "skip_reason" in d)
    for vid in sorted(ignore.keys() - matched):
        print(f"pip-audit: note: {vid} is allowed in {ALLOW.name} but matches nothing locked now: remove it")
    for name, version, vid, fixes in found:
        print(f"pip-audit: {name} {version}: {vid} (fixed in {', '.join(fixes) or 'no release yet'})")
    audited = len(deps) - len(skipped)
    tail = f"; not audited: {', '.join(skipped)}" if skipped else ""
    print(f"pip-audit ({service}): {audited} locked packages, {len(found)} known vulnerabilities not allowed{tail}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
