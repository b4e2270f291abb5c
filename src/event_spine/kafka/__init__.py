"""The Kafka seam: settings, client builders and connection diagnosis."""
