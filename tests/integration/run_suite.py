"""Runs one integration suite (a test_*.py module) like `python3 -m unittest
-v MODULE`, but a skipped test is a failure: a test that cannot run on a CI
machine must say so loudly, never pass quietly. ctest runs every suite
through this (tests/integration/CMakeLists.txt)."""
import sys
import unittest


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: run_suite.py MODULE")
    suite = unittest.defaultTestLoader.loadTestsFromName(sys.argv[1])
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    if result.skipped:
        print("\nFAILED: %d test(s) skipped; a skip fails CI:" % len(result.skipped))
        for test, reason in result.skipped:
            print("  %s: %s" % (test.id(), reason))
        sys.exit(1)
    sys.exit(0 if result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
