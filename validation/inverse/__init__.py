"""Inverse ICL experiments: estimator comparisons and the statistics behind the inverse figures."""
