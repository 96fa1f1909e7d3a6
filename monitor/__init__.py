"""Leukopenia monitoring: pure pandas analysis of longitudinal CBC results, and the command line."""
