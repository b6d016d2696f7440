"""Talking to Datadog: typed calls per site and the errors their answers become."""
