"""The Archivist worker: takes processing jobs from a Redis stream (consumer group,
acknowledged after the VOD is durably done), moves the VOD through its states in
PostgreSQL and publishes it to Cablecast exactly once."""
