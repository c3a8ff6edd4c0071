"""What the server saw: its transcript, checks on it, attacks on it, the report."""
