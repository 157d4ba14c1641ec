"""Web integrations and the cookie helpers they share."""
