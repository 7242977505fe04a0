"""What Ferry's executables share: config files and flags, logging, the event loop, sd_notify."""
