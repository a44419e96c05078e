# Allocation-failure sweep: filled in by the reliability work (issue 10).
