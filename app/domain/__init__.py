"""The order domain in plain Python: no database, web framework or Kafka in here."""
