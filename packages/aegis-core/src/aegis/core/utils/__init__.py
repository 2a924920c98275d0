"""Framework-free helpers every aegis member and service shares: time, text, security, files."""
