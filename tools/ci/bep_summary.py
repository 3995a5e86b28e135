#!/usr/bin/env python3
"""Counts test results from Bazel's build event JSON (--build_event_json_file).

    python3 tools/ci/bep_summary.py events.json     ->  prints "PASSED FAILED" (two integers)

Every test target that was configured counts once: passed when its summary is PASSED or FLAKY,
failed otherwise, including a test that never ran because it did not build.  The failed labels
go to stderr.  Used by .ci/run and tools/gpu_ci.sh, so both count the same way.
"""
import json
import sys


def main(path):
    tests, summaries = set(), {}
    with open(path) as f:
        for line in f:
            ev = json.loads(line)
            i = ev.get("id", {})
            if "targetConfigured" in i and "testSize" in ev.get("configured", {}):
                tests.add(i["targetConfigured"]["label"])
            elif "testSummary" in i:
                summaries[i["testSummary"]["label"]] = ev.get("testSummary", {}).get("overallStatus", "NO_STATUS")
    good = ("PASSED", "FLAKY")
    bad = sorted(t for t in tests if summaries.get(t) not in good)
    for label in bad:
        print("== test FAILED: %s (%s)" % (label, summaries.get(label, "did not build")), file=sys.stderr)
    print(len(tests) - len(bad), len(bad))


if __name__ == "__main__":
    main(sys.argv[1])
