"""HTTP read benchmark (issue 3): Depot against a plain Django view and strawberry-django."""
