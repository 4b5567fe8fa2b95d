"""Exact load-test results, baselines, bootstrap comparison and the CI performance gate."""
