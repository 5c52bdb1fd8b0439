"""Data stages: acquire (simulate / download), mask, patches, split."""
