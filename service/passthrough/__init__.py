"""The pass-through: any Datadog operation the org granted with OAuth, forwarded with its token."""
